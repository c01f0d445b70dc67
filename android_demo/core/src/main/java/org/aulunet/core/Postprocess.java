package org.aulunet.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * From the model's logits to what the app shows: probability = sigmoid(logit), resized back to the
 * photo's own size with the same bilinear rule as the input, lesion = probability > threshold, then the
 * mask clean-up the model's metadata lists (core/postprocess.py: largest-component, fill-holes, in that
 * order); the overlay tints lesion pixels and draws the contour (lesion pixels with a non-lesion 4-neighbour).
 */
public final class Postprocess {
    private Postprocess() {}

    /** The mask clean-up steps of core/postprocess.py, in the order they run. */
    public static final String LARGEST_COMPONENT = "largest-component";
    public static final String FILL_HOLES = "fill-holes";
    private static final List<String> STEPS = Arrays.asList(LARGEST_COMPONENT, FILL_HOLES);
    private static final String CHOICES = "none, largest-component, fill-holes or largest-component,fill-holes";
    private static final Pattern METADATA_STEPS = Pattern.compile("\"postprocess\"\\s*:\\s*(\\[[^\\]]*\\]|[^,}\\s]+)");
    private static final Pattern QUOTED = Pattern.compile("\"([^\"]*)\"");

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

    /**
     * Labels of the pixels equal to `value` by a stack flood fill, seeds in row-major order (8-connected when
     * `diagonal`, else 4-connected): labels[i] is 1.. in order of each component's first pixel, 0 elsewhere;
     * the last element of the returned array pair is the sizes, sizes[k] of label k + 1.
     */
    private static int[][] components(boolean[] m, int height, int width, boolean value, boolean diagonal) {
        if (m.length != height * width) {
            throw new IllegalArgumentException("expected a " + height + "x" + width + " mask, got " + m.length + " pixels");
        }
        int[] labels = new int[m.length];
        int[] stack = new int[m.length];
        int[] sizes = new int[16];
        int count = 0;
        for (int seed = 0; seed < m.length; seed++) {
            if (m[seed] != value || labels[seed] != 0) continue;
            int label = count + 1, top = 0, size = 0;
            labels[seed] = label;
            stack[top++] = seed;
            while (top > 0) {
                int i = stack[--top], y = i / width, x = i - y * width;
                size++;
                for (int dy = -1; dy <= 1; dy++) {
                    int ny = y + dy;
                    if (ny < 0 || ny >= height) continue;
                    for (int dx = -1; dx <= 1; dx++) {
                        int nx = x + dx;
                        if ((dx == 0 && dy == 0) || nx < 0 || nx >= width || (!diagonal && dx != 0 && dy != 0)) continue;
                        int j = ny * width + nx;
                        if (m[j] == value && labels[j] == 0) {
                            labels[j] = label;
                            stack[top++] = j;
                        }
                    }
                }
            }
            if (count == sizes.length) sizes = Arrays.copyOf(sizes, 2 * count);
            sizes[count++] = size;
        }
        return new int[][] {labels, Arrays.copyOf(sizes, count)};
    }

    /** Only the largest 8-connected lesion region (ties: the one whose first pixel in row-major order comes first). */
    public static boolean[] largestComponent(boolean[] mask, int height, int width) {
        int[][] c = components(mask, height, width, true, true);
        int[] labels = c[0], sizes = c[1];
        int best = 0;
        for (int k = 1; k < sizes.length; k++) {
            if (sizes[k] > sizes[best]) best = k;
        }
        boolean[] out = new boolean[mask.length];
        for (int i = 0; i < out.length; i++) out[i] = sizes.length > 0 && labels[i] == best + 1;
        return out;
    }

    /** Every background region (4-connected) that does not touch the image border becomes lesion. */
    public static boolean[] fillHoles(boolean[] mask, int height, int width) {
        int[][] c = components(mask, height, width, false, false);
        int[] labels = c[0];
        boolean[] open = new boolean[c[1].length + 1];
        for (int x = 0; x < width; x++) {
            open[labels[x]] = true;
            open[labels[(height - 1) * width + x]] = true;
        }
        for (int y = 0; y < height; y++) {
            open[labels[y * width]] = true;
            open[labels[y * width + width - 1]] = true;
        }
        boolean[] out = new boolean[mask.length];
        for (int i = 0; i < out.length; i++) out[i] = mask[i] || !open[labels[i]];
        return out;
    }

    /** The mask after `steps` (step names), run in the order of core/postprocess.py whatever order given. */
    public static boolean[] apply(boolean[] mask, int height, int width, String... steps) {
        List<String> asked = Arrays.asList(steps);
        for (String s : asked) {
            if (!STEPS.contains(s)) throw new IllegalArgumentException("postprocess '" + s + "': unknown step; choose " + CHOICES);
        }
        boolean[] out = mask;
        if (asked.contains(LARGEST_COMPONENT)) out = largestComponent(out, height, width);
        if (asked.contains(FILL_HOLES)) out = fillHoles(out, height, width);
        return out;
    }

    /** A text such as "none" or "largest-component,fill-holes" -> its steps, in the order they run. */
    public static String[] parseSteps(String text) {
        List<String> parts = new ArrayList<>();
        for (String p : text.split(",", -1)) parts.add(p.trim());
        if (parts.size() == 1 && parts.get(0).equals("none")) return new String[0];
        return canonical(parts, "postprocess '" + text + "'");
    }

    /**
     * The steps the model's metadata JSON (its asset, ModelSpec.METADATA_ASSET) lists under "postprocess",
     * in the order they run; none when the key is absent. A value that is not a list of steps is refused.
     */
    public static String[] stepsFromMetadata(String json) {
        Matcher m = METADATA_STEPS.matcher(json);
        if (!m.find()) return new String[0];
        String value = m.group(1);
        if (!value.startsWith("[")) {
            throw new IllegalArgumentException("metadata postprocess " + value + ": not a list of steps; choose " + CHOICES);
        }
        List<String> names = new ArrayList<>();
        Matcher q = QUOTED.matcher(value);
        while (q.find()) names.add(q.group(1));
        if (!value.substring(1, value.length() - 1).replaceAll("\"[^\"]*\"|[\\s,]", "").isEmpty()) {
            throw new IllegalArgumentException("metadata postprocess " + value + ": not a list of steps; choose " + CHOICES);
        }
        return canonical(names, "metadata postprocess " + value);
    }

    private static String[] canonical(List<String> names, String what) {
        for (String n : names) {
            if (!STEPS.contains(n)) throw new IllegalArgumentException(what + ": unknown post-processing; choose " + CHOICES);
        }
        List<String> out = new ArrayList<>();
        for (String s : STEPS) {
            if (names.contains(s)) out.add(s);
        }
        return out.toArray(new String[0]);
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
