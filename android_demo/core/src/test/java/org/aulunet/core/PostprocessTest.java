package org.aulunet.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;

import org.junit.Test;

/**
 * The mask clean-up (Postprocess.largestComponent, fillHoles, apply) against core/postprocess.py: pairs written
 * by android_demo/tools/make_golden.py (postprocess.txt: CASE HEIGHT WIDTH STEPS, CASE.pin -> CASE.pout), equal
 * pixel for pixel. Run with -Dgolden.dir=DIR.
 */
public class PostprocessTest {
    private static Path dir() {
        String d = System.getProperty("golden.dir");
        if (d == null) fail("pass -Dgolden.dir=DIR (written by android_demo/tools/make_golden.py)");
        return Paths.get(d);
    }

    private static boolean[] mask(byte[] b) {
        boolean[] m = new boolean[b.length];
        for (int i = 0; i < b.length; i++) m[i] = b[i] != 0;
        return m;
    }

    @Test
    public void sameMaskGivesSameCleanUpAsPython() throws IOException {
        List<String> lines = Files.readAllLines(dir().resolve("postprocess.txt"));
        assertFalse("no post-processing cases", lines.isEmpty());
        int changed = 0;
        for (String line : lines) {
            String[] t = line.trim().split(" ");
            int h = Integer.parseInt(t[1]), w = Integer.parseInt(t[2]);
            boolean[] in = mask(Files.readAllBytes(dir().resolve(t[0] + ".pin")));
            boolean[] want = mask(Files.readAllBytes(dir().resolve(t[0] + ".pout")));
            boolean[] before = in.clone();
            boolean[] got = Postprocess.apply(in, h, w, Postprocess.parseSteps(t[3]));
            assertEquals(t[0] + ": mask size", h * w, got.length);
            int differ = 0;
            for (int i = 0; i < got.length; i++) if (got[i] != want[i]) differ++;
            assertEquals(t[0] + " (" + t[3] + "): pixels that differ from core/postprocess.py", 0, differ);
            assertArrayEquals(t[0] + ": the input mask is left as it was", before, in);
            if (!java.util.Arrays.equals(in, want)) changed++;
        }
        assertTrue("the steps change at least some golden masks", changed > 0);
    }

    @Test
    public void stepsParseInTheirOneOrder() {
        assertArrayEquals(new String[0], Postprocess.parseSteps("none"));
        String[] both = {"largest-component", "fill-holes"};
        assertArrayEquals(both, Postprocess.parseSteps("fill-holes,largest-component"));
        assertArrayEquals(new String[] {"fill-holes"}, Postprocess.parseSteps("fill-holes"));
        for (String bad : new String[] {"largest", "", "none,fill-holes", "fill-holes,"}) {
            try {
                Postprocess.parseSteps(bad);
                fail(bad + " must be refused");
            } catch (IllegalArgumentException expected) {
                assertEquals("postprocess '" + bad + "': unknown post-processing; choose none, largest-component, "
                             + "fill-holes or largest-component,fill-holes", expected.getMessage());
            }
        }
    }

    @Test
    public void stepsComeFromTheModelsMetadata() throws IOException {
        assertArrayEquals(new String[0], Postprocess.stepsFromMetadata("{\"threshold\": 0.5, \"toolkit\": \"aulunet-edge\"}"));
        assertArrayEquals(new String[] {"largest-component", "fill-holes"},
                Postprocess.stepsFromMetadata("{\"postprocess\": [\n  \"fill-holes\",\n  \"largest-component\"\n ], \"threshold\": 0.5}"));
        assertArrayEquals(new String[] {"fill-holes"}, Postprocess.stepsFromMetadata("{\"postprocess\":[\"fill-holes\"]}"));
        assertArrayEquals(new String[0], Postprocess.stepsFromMetadata("{\"postprocess\": []}"));
        for (String bad : new String[] {"{\"postprocess\": \"fill-holes\"}", "{\"postprocess\": [1]}",
                                        "{\"postprocess\": [\"holes\"]}"}) {
            try {
                Postprocess.stepsFromMetadata(bad);
                fail(bad + " must be refused");
            } catch (IllegalArgumentException expected) {
                assertTrue(expected.getMessage(), expected.getMessage().startsWith("metadata postprocess "));
            }
        }
        Path assets = dir().resolve("metadata");  // the app's metadata assets, copied there by the Python test
        if (Files.isDirectory(assets)) {
            try (java.util.stream.Stream<Path> files = Files.list(assets)) {
                for (Path p : (Iterable<Path>) files::iterator) {
                    String json = new String(Files.readAllBytes(p), StandardCharsets.UTF_8);
                    String want = Files.readAllLines(dir().resolve("metadata_steps").resolve(p.getFileName())).get(0);
                    assertEquals(p.getFileName().toString(), want, String.join(",", Postprocess.stepsFromMetadata(json)));
                }
            }
        }
    }

    @Test
    public void tiesKeepTheFirstComponentAndHolesOpenToTheBorderStay() {
        boolean[] m = new boolean[4 * 8];
        m[8] = m[9] = m[10] = true;        // 3 pixels from (1, 0)
        m[6] = m[14] = m[22] = true;       // 3 pixels from (0, 6): first in row-major order, kept
        boolean[] got = Postprocess.largestComponent(m, 4, 8);
        assertTrue(got[6] && got[14] && got[22] && !got[8] && !got[9] && !got[10]);
        boolean[] ring = {true, true, true, true, false, true, true, true, true};
        boolean[] full = new boolean[9];
        java.util.Arrays.fill(full, true);
        assertArrayEquals(full, Postprocess.fillHoles(ring, 3, 3));
        ring[1] = false;                   // the hole reaches the border through a 4-neighbour
        assertArrayEquals(ring, Postprocess.fillHoles(ring, 3, 3));
        assertArrayEquals(new boolean[6], Postprocess.largestComponent(new boolean[6], 2, 3));
        try {
            Postprocess.apply(ring, 3, 3, "holes");
            fail("an unknown step must be refused");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().startsWith("postprocess 'holes': unknown step"));
        }
    }
}
