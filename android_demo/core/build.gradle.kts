// Plain Java: the pre/post-processing shared by the app and checked on the JVM against Python's golden pairs.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // Golden pairs: python android_demo/tools/make_golden.py build/golden
    systemProperty("golden.dir", layout.buildDirectory.dir("golden").get().asFile.path)
}
