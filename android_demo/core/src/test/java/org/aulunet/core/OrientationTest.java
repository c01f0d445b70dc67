package org.aulunet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;

import org.junit.Test;

/**
 * Orientation.apply against the Python loader (model/data/, PIL's ImageOps.exif_transpose) on the same
 * photo saved with each of the 8 EXIF orientations (android_demo/tools/make_golden.py
 * write_orientation_cases): the same pixels, byte for byte. Run with -Dgolden.dir=DIR.
 */
public class OrientationTest {
    private static Path dir() {
        String d = System.getProperty("golden.dir");
        if (d == null) fail("pass -Dgolden.dir=DIR (written by android_demo/tools/make_golden.py)");
        return Paths.get(d);
    }

    private static int[] argb(byte[] rgb) {
        int[] out = new int[rgb.length / 3];
        for (int i = 0; i < out.length; i++) {
            out[i] = 0xFF000000 | (rgb[3 * i] & 0xFF) << 16 | (rgb[3 * i + 1] & 0xFF) << 8 | (rgb[3 * i + 2] & 0xFF);
        }
        return out;
    }

    @Test
    public void allEightOrientationsMatchPython() throws IOException {
        List<String> lines = Files.readAllLines(dir().resolve("orientation.txt"));
        String[] s = lines.get(0).trim().split(" ");
        assertEquals("stored", s[0]);
        int h = Integer.parseInt(s[1]), w = Integer.parseInt(s[2]);
        assertTrue("the golden photo must not be square, or turns could not be told from flips", h != w);
        int[] stored = argb(Files.readAllBytes(dir().resolve("exif_stored.rgb")));
        int seen = 0;
        for (String line : lines.subList(1, lines.size())) {
            String[] t = line.trim().split(" ");
            int o = Integer.parseInt(t[0]), wantH = Integer.parseInt(t[1]), wantW = Integer.parseInt(t[2]);
            Orientation.Oriented got = Orientation.apply(stored, h, w, o);
            assertEquals("orientation " + o + ": height", wantH, got.height);
            assertEquals("orientation " + o + ": width", wantW, got.width);
            assertEquals("orientation " + o + ": sides swapped", Orientation.swapsSides(o), wantH == w && wantH != h);
            byte[] want = Files.readAllBytes(dir().resolve("exif_" + o + ".rgb"));
            assertArrayEquals("orientation " + o + ": pixels differ from Python's", want, Preprocess.argbToRgb(got.pixels));
            seen++;
        }
        assertEquals("golden cases for orientations 1..8", 8, seen);
    }

    @Test
    public void unknownTagsKeepThePixelsAndBadSizesAreRefused() {
        int[] px = {1, 2, 3, 4, 5, 6};
        for (int o : new int[] {0, 1, 9, -1}) {
            Orientation.Oriented got = Orientation.apply(px, 2, 3, o);
            assertSame(px, got.pixels);
            assertEquals(2, got.height);
            assertEquals(3, got.width);
        }
        assertArrayEquals(new int[] {4, 1, 5, 2, 6, 3}, Orientation.apply(px, 2, 3, 6).pixels);  // 90 clockwise
        try {
            Orientation.apply(px, 4, 2, 6);
            fail("wrong length must be refused");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("4x2"));
        }
    }
}
