package org.aulunet.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.media.ExifInterface
import android.net.Uri
import android.os.Bundle
import android.os.SystemClock
import android.widget.Button
import android.widget.CheckBox
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import org.aulunet.core.ModelSpec
import org.aulunet.core.Orientation
import org.aulunet.core.Postprocess
import org.aulunet.core.Preprocess
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.GpuDelegate

/**
 * Pick or take a photo, run the embedded INT8 AULUNet (assets/aulunet_v3_isic2018_int8.tflite, or with "Edge model"
 * ticked the 128x128 edge model, assets/aulunet_v3_in128_isic2018_int8.tflite) with LiteRT,
 * draw the lesion overlay and contour, and show the inference time and the lesion area.
 * Pre/post-processing is org.aulunet.core (plain Java, checked against the Python pipeline on the JVM).
 */
class MainActivity : AppCompatActivity() {
    private lateinit var image: ImageView
    private lateinit var status: TextView
    private lateinit var gpu: CheckBox
    private lateinit var edge: CheckBox
    private var interpreter: Interpreter? = null
    private var delegate: GpuDelegate? = null

    private val pick = registerForActivityResult(ActivityResultContracts.GetContent()) { uri: Uri? ->
        uri?.let { segment(decode(it), orientation(it)) }
    }
    private val camera = registerForActivityResult(ActivityResultContracts.TakePicturePreview()) { bmp: Bitmap? ->
        segment(bmp)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        image = findViewById(R.id.image)
        status = findViewById(R.id.status)
        gpu = findViewById(R.id.gpu)
        edge = findViewById(R.id.edge)
        edge.setOnCheckedChangeListener { _, _ -> closeInterpreter() }
        findViewById<Button>(R.id.pick).setOnClickListener { pick.launch("image/*") }
        findViewById<Button>(R.id.camera).setOnClickListener { camera.launch(null) }
        gpu.setOnCheckedChangeListener { _, _ -> closeInterpreter() }
    }

    override fun onDestroy() {
        closeInterpreter()
        super.onDestroy()
    }

    private fun loadModel(): MappedByteBuffer {
        val fd = assets.openFd(if (edge.isChecked) ModelSpec.EDGE_ASSET else ModelSpec.ASSET)
        FileInputStream(fd.fileDescriptor).channel.use { ch ->
            return ch.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }
    }

    private fun interpreter(): Interpreter {
        interpreter?.let { return it }
        val options = Interpreter.Options().setNumThreads(4)
        if (gpu.isChecked) {
            delegate = GpuDelegate().also { options.addDelegate(it) }
        }
        return Interpreter(loadModel(), options).also { interpreter = it }
    }

    /** The mask clean-up the chosen model's metadata asset lists (core/postprocess.py; none when absent). */
    private fun postprocessSteps(): Array<String> {
        val name = if (edge.isChecked) ModelSpec.EDGE_METADATA_ASSET else ModelSpec.METADATA_ASSET
        return Postprocess.stepsFromMetadata(assets.open(name).bufferedReader().use { it.readText() })
    }

    private fun closeInterpreter() {
        interpreter?.close()
        interpreter = null
        delegate?.close()
        delegate = null
    }

    /** Decode a picked image; very large photos are subsampled by the decoder to at most ~2048 px. */
    private fun decode(uri: Uri): Bitmap? = try {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        contentResolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, bounds) }
        var sample = 1
        while (maxOf(bounds.outWidth, bounds.outHeight) / sample > 2048) sample *= 2
        val opts = BitmapFactory.Options().apply { inSampleSize = sample; inPreferredConfig = Bitmap.Config.ARGB_8888 }
        contentResolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, opts) }
    } catch (e: Exception) {
        null
    }

    /** The photo's EXIF orientation tag (1..8; 1 when absent): BitmapFactory ignores it, so it is applied to the
     *  pixels (Orientation.apply), as the toolkit's Python loader and the browser demo apply it. */
    private fun orientation(uri: Uri): Int = try {
        contentResolver.openInputStream(uri)?.use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        } ?: ExifInterface.ORIENTATION_NORMAL
    } catch (e: Exception) {
        ExifInterface.ORIENTATION_NORMAL
    }

    private fun segment(bitmap: Bitmap?, orientation: Int = ExifInterface.ORIENTATION_NORMAL) {
        if (bitmap == null || bitmap.width == 0 || bitmap.height == 0) {
            status.text = getString(R.string.unreadable)
            return
        }
        val bmp = if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap else bitmap.copy(Bitmap.Config.ARGB_8888, false)
        val stored = IntArray(bmp.width * bmp.height).also { bmp.getPixels(it, 0, bmp.width, 0, 0, bmp.width, bmp.height) }
        val shownAs = Orientation.apply(stored, bmp.height, bmp.width, orientation)
        val w = shownAs.width
        val h = shownAs.height
        val argb = shownAs.pixels
        val size = if (edge.isChecked) ModelSpec.EDGE_INPUT_SIZE else ModelSpec.INPUT_HEIGHT
        val input = Preprocess.toInput(Preprocess.argbToRgb(argb), h, w, size)
        val inBuf = ByteBuffer.allocateDirect(4 * input.size).order(ByteOrder.nativeOrder())
        inBuf.asFloatBuffer().put(input)
        val outBuf = ByteBuffer.allocateDirect(4 * size * size * ModelSpec.OUTPUT_CHANNELS)
            .order(ByteOrder.nativeOrder())
        val tflite = interpreter()
        val t0 = SystemClock.elapsedRealtimeNanos()
        tflite.run(inBuf, outBuf)
        val ms = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6
        outBuf.rewind()
        val logits = FloatArray(size * size).also { outBuf.asFloatBuffer().get(it) }
        val mask = Postprocess.apply(Postprocess.mask(Postprocess.probabilities(logits, h, w, size), ModelSpec.THRESHOLD),
            h, w, *postprocessSteps())
        val shown = Postprocess.overlay(argb, mask, h, w, 0xFF00C853.toInt(), 0.45f)
        image.setImageBitmap(Bitmap.createBitmap(shown, w, h, Bitmap.Config.ARGB_8888))
        val area = 100.0 * Postprocess.areaFraction(mask)
        status.text = String.format("Inference %.1f ms (%s)  ·  lesion %.1f%% of the image", ms,
            if (gpu.isChecked) "GPU" else "CPU, 4 threads", area)
    }
}
