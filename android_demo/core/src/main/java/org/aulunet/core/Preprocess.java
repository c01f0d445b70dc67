package org.aulunet.core;

/**
 * The toolkit's preprocessing (core/preprocess.py), with no Android dependency:
 * RGB bytes -> bilinear resize with half-pixel centres and no antialiasing (source coordinates clamped
 * to the image) -> per-image min-max over all pixels and channels to [0, 1] (a constant image becomes
 * zeros) -> float32 NHWC (height, width, RGB), ready for the .tflite input.
 */
public final class Preprocess {
    private Preprocess() {}

    /** Source index pairs and weights of half-pixel bilinear resampling from nIn to nOut samples. */
    static final class Taps {
        final int[] i0, i1;
        final double[] w1;

        Taps(int nIn, int nOut) {
            i0 = new int[nOut];
            i1 = new int[nOut];
            w1 = new double[nOut];
            double scale = (double) nIn / nOut;
            for (int o = 0; o < nOut; o++) {
                double src = (o + 0.5) * scale - 0.5;
                src = Math.min(Math.max(src, 0.0), nIn - 1);
                int a = (int) Math.floor(src);
                i0[o] = a;
                i1[o] = Math.min(a + 1, nIn - 1);
                w1[o] = src - a;
            }
        }
    }

    /** Bilinear resize of an interleaved HxWxC float image (half-pixel centres, no antialias). */
    public static float[] resizeBilinear(float[] src, int h, int w, int c, int outH, int outW) {
        if (src.length != h * w * c) {
            throw new IllegalArgumentException("image has " + src.length + " values, expected " + h + "x" + w + "x" + c);
        }
        Taps ty = new Taps(h, outH), tx = new Taps(w, outW);
        float[] out = new float[outH * outW * c];
        for (int y = 0; y < outH; y++) {
            int r0 = ty.i0[y] * w, r1 = ty.i1[y] * w;
            double wy1 = ty.w1[y], wy0 = 1.0 - wy1;
            for (int x = 0; x < outW; x++) {
                int c0 = tx.i0[x], c1 = tx.i1[x];
                double wx1 = tx.w1[x], wx0 = 1.0 - wx1;
                for (int k = 0; k < c; k++) {
                    double top = wx0 * src[(r0 + c0) * c + k] + wx1 * src[(r0 + c1) * c + k];
                    double bottom = wx0 * src[(r1 + c0) * c + k] + wx1 * src[(r1 + c1) * c + k];
                    out[(y * outW + x) * c + k] = (float) (wy0 * top + wy1 * bottom);
                }
            }
        }
        return out;
    }

    /** Per-image min-max to [0, 1], in place; a constant image becomes zeros. */
    public static float[] minMaxScale(float[] x) {
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float v : x) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        if (!(hi > lo)) {
            java.util.Arrays.fill(x, 0f);
            return x;
        }
        float range = hi - lo;
        for (int i = 0; i < x.length; i++) {
            x[i] = (x[i] - lo) / range;
        }
        return x;
    }

    /** Interleaved RGB bytes (HxWx3, unsigned) -> the default model's input, float32 NHWC (ModelSpec size). */
    public static float[] toInput(byte[] rgb, int height, int width) {
        return toInput(rgb, height, width, ModelSpec.INPUT_HEIGHT);
    }

    /** The same for a model of square input side `size` (ModelSpec.EDGE_INPUT_SIZE for the edge model). */
    public static float[] toInput(byte[] rgb, int height, int width, int size) {
        if (height <= 0 || width <= 0 || rgb.length != height * width * 3) {
            throw new IllegalArgumentException("expected " + height + "x" + width + "x3 RGB bytes, got " + rgb.length);
        }
        float[] f = new float[rgb.length];
        for (int i = 0; i < rgb.length; i++) {
            f[i] = rgb[i] & 0xFF;
        }
        return minMaxScale(resizeBilinear(f, height, width, 3, size, size));
    }

    /** ARGB ints (Android's Bitmap.getPixels) -> interleaved RGB bytes. */
    public static byte[] argbToRgb(int[] argb) {
        byte[] out = new byte[argb.length * 3];
        for (int i = 0; i < argb.length; i++) {
            out[3 * i] = (byte) (argb[i] >> 16);
            out[3 * i + 1] = (byte) (argb[i] >> 8);
            out[3 * i + 2] = (byte) argb[i];
        }
        return out;
    }
}
