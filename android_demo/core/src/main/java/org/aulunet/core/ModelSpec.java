package org.aulunet.core;

/**
 * What the app assumes about the embedded models. Python tests read each .tflite's signature and
 * metadata and check them against these constants (tests/android_demo/test_app.py), and
 * android_demo/tools/copy_model.py copies only the files named here.
 */
public final class ModelSpec {
    private ModelSpec() {}

    public static final String ASSET = "aulunet_v3_isic2018_int8.tflite";
    public static final String METADATA_ASSET = "aulunet_v3_isic2018_int8.json";
    public static final String LAYOUT = "NHWC";
    public static final int INPUT_HEIGHT = 256;
    public static final int INPUT_WIDTH = 256;
    public static final int INPUT_CHANNELS = 3;
    public static final int OUTPUT_CHANNELS = 1;
    /** float32 input and output: the INT8 model quantizes inside the graph. */
    public static final String INPUT_DTYPE = "float32";
    public static final String OUTPUT_DTYPE = "float32";
    /** The model returns logits; sigmoid(logit) > THRESHOLD is lesion. */
    public static final float THRESHOLD = 0.5f;
    /** The edge model (core/paths.py EDGE_MODEL), offered beside the default: the same pre- and
     *  post-processing at a 128x128 input, ~0.3x the latency (benchmarks/results/pareto.json). */
    public static final String EDGE_ASSET = "aulunet_v3_in128_isic2018_int8.tflite";
    public static final String EDGE_METADATA_ASSET = "aulunet_v3_in128_isic2018_int8.json";
    public static final int EDGE_INPUT_SIZE = 128;
}
