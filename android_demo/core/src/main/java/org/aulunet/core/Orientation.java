package org.aulunet.core;

/**
 * The EXIF orientation tag (1..8) applied to decoded pixels, so that the photo is segmented the way
 * every viewer shows it: Android's BitmapFactory ignores the tag, while the toolkit's Python loader
 * (PIL's ImageOps.exif_transpose in model/data/) and the browser (createImageBitmap, imageOrientation
 * "from-image") apply it. Pure function on a row-major pixel array; any other tag value means 1 (as stored).
 *
 * <pre>
 * 1 as stored            2 mirrored (left-right)     3 rotated 180            4 flipped (top-bottom)
 * 5 transposed           6 rotated 90 clockwise      7 transversed            8 rotated 90 counter-clockwise
 * </pre>
 * Orientations 5 to 8 swap width and height.
 */
public final class Orientation {
    private Orientation() {}

    /** The oriented pixels and their size. */
    public static final class Oriented {
        public final int[] pixels;
        public final int height, width;

        Oriented(int[] pixels, int height, int width) {
            this.pixels = pixels;
            this.height = height;
            this.width = width;
        }
    }

    /** Whether the tag swaps width and height (orientations 5 to 8). */
    public static boolean swapsSides(int orientation) {
        return orientation >= 5 && orientation <= 8;
    }

    /**
     * Row-major pixels (ARGB ints from Bitmap.getPixels, or any one value per pixel) of a height x width
     * image as stored -> the image as displayed under the EXIF orientation tag. Returns a new array (the
     * input's for orientation 1 or an unknown tag).
     */
    public static Oriented apply(int[] pixels, int height, int width, int orientation) {
        if (height <= 0 || width <= 0 || pixels.length != height * width) {
            throw new IllegalArgumentException("expected " + height + "x" + width + " pixels, got " + pixels.length);
        }
        if (orientation < 2 || orientation > 8) {
            return new Oriented(pixels, height, width);
        }
        boolean swap = swapsSides(orientation);
        int outH = swap ? width : height, outW = swap ? height : width;
        int[] out = new int[pixels.length];
        for (int y = 0; y < outH; y++) {
            for (int x = 0; x < outW; x++) {
                int sy, sx;  // the stored pixel shown at (y, x)
                switch (orientation) {
                    case 2: sy = y; sx = width - 1 - x; break;
                    case 3: sy = height - 1 - y; sx = width - 1 - x; break;
                    case 4: sy = height - 1 - y; sx = x; break;
                    case 5: sy = x; sx = y; break;
                    case 6: sy = height - 1 - x; sx = y; break;
                    case 7: sy = height - 1 - x; sx = width - 1 - y; break;
                    default: sy = x; sx = width - 1 - y; break;  // 8
                }
                out[y * outW + x] = pixels[sy * width + sx];
            }
        }
        return new Oriented(out, outH, outW);
    }
}
