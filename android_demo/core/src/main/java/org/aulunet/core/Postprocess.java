package org.aulunet.core;

/**
 * From the model's logits to what the app shows: probability = sigmoid(logit), resized back to the
 * photo's own size with the same bilinear rule as the input, lesion = probability > threshold; the
 * overlay tints lesion pixels and draws the contour (lesion pixels with a non-lesion 4-neighbour).
 */
public final class Postprocess {
    private Postprocess() {}

    public static float sigmoid(float logit) {
        return (float) (0.5 * (1.0 + Math.tanh(0.5 * logit)));
    }

    /** logits (INPUT_HEIGHT x INPUT_WIDTH, NHWC with one channel) -> probabilities at height x width. */
    public static float[] probabilities(float[] logits, int height, int width) {
        return probabilities(logits, height, width, ModelSpec.INPUT_HEIGHT);
    }

    /** The same for a model of square input side `size` (its logits are size x size). */
    public static float[] probabilities(float[] logits, int height, int width, int size) {
        if (logits.length != size * size) {
            throw new IllegalArgumentException("expected " + size + "x" + size + " logits, got " + logits.length);
        }
        float[] p = new float[logits.length];
        for (int i = 0; i < p.length; i++) {
            p[i] = sigmoid(logits[i]);
        }
        return Preprocess.resizeBilinear(p, size, size, 1, height, width);
    }

    public static boolean[] mask(float[] prob, float threshold) {
        boolean[] m = new boolean[prob.length];
        for (int i = 0; i < prob.length; i++) {
            m[i] = prob[i] > threshold;
        }
        return m;
    }

    /** Fraction of the image that is lesion. */
    public static double areaFraction(boolean[] mask) {
        int n = 0;
        for (boolean b : mask) {
            if (b) n++;
        }
        return mask.length == 0 ? 0.0 : (double) n / mask.length;
    }

    public static boolean[] contour(boolean[] mask, int height, int width) {
        boolean[] c = new boolean[mask.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int i = y * width + x;
                if (!mask[i]) continue;
                boolean edge = y == 0 || x == 0 || y == height - 1 || x == width - 1
                        || !mask[i - width] || !mask[i + width] || !mask[i - 1] || !mask[i + 1];
                c[i] = edge;
            }
        }
        return c;
    }

    /** ARGB photo + mask -> ARGB overlay: lesion tinted with `tint` at `alpha`, contour in `tint`, opaque. */
    public static int[] overlay(int[] argb, boolean[] mask, int height, int width, int tint, float alpha) {
        boolean[] edge = contour(mask, height, width);
        int[] out = new int[argb.length];
        int tr = (tint >> 16) & 0xFF, tg = (tint >> 8) & 0xFF, tb = tint & 0xFF;
        for (int i = 0; i < argb.length; i++) {
            int r = (argb[i] >> 16) & 0xFF, g = (argb[i] >> 8) & 0xFF, b = argb[i] & 0xFF;
            if (edge[i]) {
                r = tr; g = tg; b = tb;
            } else if (mask[i]) {
                r = Math.round((1 - alpha) * r + alpha * tr);
                g = Math.round((1 - alpha) * g + alpha * tg);
                b = Math.round((1 - alpha) * b + alpha * tb);
            }
            out[i] = 0xFF000000 | (r << 16) | (g << 8) | b;
        }
        return out;
    }
}
