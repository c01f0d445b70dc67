package org.aulunet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;

import org.junit.Test;

/**
 * The app's pre/post-processing against golden pairs written by the Python pipeline
 * (android_demo/tools/make_golden.py): same photo -> same 256x256 input tensor; same model output ->
 * same mask. Run with -Dgolden.dir=DIR.
 */
public class GoldenTest {
    private static Path dir() {
        String d = System.getProperty("golden.dir");
        if (d == null) fail("pass -Dgolden.dir=DIR (written by android_demo/tools/make_golden.py)");
        return Paths.get(d);
    }

    private static List<String> cases() throws IOException {
        List<String> lines = Files.readAllLines(dir().resolve("index.txt"));
        assertFalse("no golden cases", lines.isEmpty());
        return lines;
    }

    private static float[] floats(Path p) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = new float[b.remaining() / 4];
        b.asFloatBuffer().get(f);
        return f;
    }

    @Test
    public void sameImageGivesSameInputTensor() throws IOException {
        for (String line : cases()) {
            String[] t = line.trim().split(" ");
            int h = Integer.parseInt(t[1]), w = Integer.parseInt(t[2]);
            int size = Integer.parseInt(t[3]);  // 256 for the default model, ModelSpec.EDGE_INPUT_SIZE for the edge one
            byte[] rgb = Files.readAllBytes(dir().resolve(t[0] + ".rgb"));
            float[] want = floats(dir().resolve(t[0] + ".input"));
            float[] got = size == ModelSpec.INPUT_HEIGHT ? Preprocess.toInput(rgb, h, w) : Preprocess.toInput(rgb, h, w, size);
            assertEquals(size * size * ModelSpec.INPUT_CHANNELS, got.length);
            double worst = 0;
            for (int i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
            assertTrue(t[0] + ": input tensor differs from Python by " + worst, worst <= 1e-5);
        }
    }

    @Test
    public void sameModelOutputGivesSameMask() throws IOException {
        for (String line : cases()) {
            String[] t = line.trim().split(" ");
            int h = Integer.parseInt(t[1]), w = Integer.parseInt(t[2]);
            float[] logits = floats(dir().resolve(t[0] + ".logits"));
            float[] wantProb = floats(dir().resolve(t[0] + ".prob"));
            byte[] wantMask = Files.readAllBytes(dir().resolve(t[0] + ".mask"));
            int size = Integer.parseInt(t[3]);
            float[] prob = size == ModelSpec.INPUT_HEIGHT ? Postprocess.probabilities(logits, h, w)
                                                          : Postprocess.probabilities(logits, h, w, size);
            boolean[] mask = Postprocess.mask(prob, ModelSpec.THRESHOLD);
            assertEquals(h * w, mask.length);
            int differ = 0, lesion = 0;
            double worst = 0;
            for (int i = 0; i < mask.length; i++) {
                worst = Math.max(worst, Math.abs(prob[i] - wantProb[i]));
                boolean want = wantMask[i] != 0;
                if (want) lesion++;
                if (mask[i] != want && Math.abs(wantProb[i] - ModelSpec.THRESHOLD) > 1e-4) differ++;
            }
            assertTrue(t[0] + ": probabilities differ from Python by " + worst, worst <= 1e-5);
            assertEquals(t[0] + ": mask pixels that differ from Python", 0, differ);
            assertTrue(t[0] + ": golden mask has no lesion", lesion > 0);
        }
    }

    @Test
    public void overlayTintsLesionAndDrawsContour() {
        int h = 5, w = 5;
        boolean[] m = new boolean[h * w];
        for (int y = 1; y <= 3; y++) for (int x = 1; x <= 3; x++) m[y * w + x] = true;
        int[] photo = new int[h * w];
        java.util.Arrays.fill(photo, 0xFF000000 | (100 << 16) | (100 << 8) | 100);
        int[] out = Postprocess.overlay(photo, m, h, w, 0xFFFF0000, 0.5f);
        assertEquals(photo[0], out[0]);                                    // background untouched
        assertEquals(0xFFFF0000, out[1 * w + 1]);                          // contour: the tint
        assertEquals(0xFF000000 | (178 << 16) | (50 << 8) | 50, out[2 * w + 2]); // interior: blended
        assertEquals(9.0 / 25.0, Postprocess.areaFraction(m), 1e-12);
        assertEquals(8, countTrue(Postprocess.contour(m, h, w)));
    }

    @Test
    public void constantImageAndBitmapPixels() {
        byte[] grey = new byte[7 * 9 * 3];
        java.util.Arrays.fill(grey, (byte) 200);
        float[] x = Preprocess.toInput(grey, 7, 9);
        for (float v : x) assertEquals(0f, v, 0f);
        assertArrayEquals(new byte[] {(byte) 255, 0, 10}, Preprocess.argbToRgb(new int[] {0xFFFF000A}));
        try {
            Preprocess.toInput(new byte[10], 2, 2);
            fail("wrong length must be refused");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("2x2x3"));
        }
    }

    private static int countTrue(boolean[] b) {
        int n = 0;
        for (boolean v : b) if (v) n++;
        return n;
    }
}
