package org.aulunet.core;

/**
 * What the app assumes about the embedded model. A Python test reads the .tflite's signature and
 * metadata and checks them against these constants (android_demo/tools/check_app.py).
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
}
