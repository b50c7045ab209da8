"""Our FunctionRpc.proto, compiled with grpcio-tools into a temporary folder and imported.

The generated module is never committed: it is made once per process, at first use, with the
protoc that grpcio-tools ships (and its copy of google/protobuf/duration.proto).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from types import ModuleType

__all__ = ["MODULE_NAME", "PROTO", "compiled_dir", "import_protos", "protos"]

PROTO = Path(__file__).with_name("FunctionRpc.proto")
MODULE_NAME = "FunctionRpc_pb2"


def compile_protos(out_dir: Path) -> Path:
    """Compile `PROTO` into ``out_dir``; returns the generated module's path."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            PROTO.name,
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed ({code}) on {PROTO}")
    return out_dir / f"{MODULE_NAME}.py"


def import_protos(folder: Path | str) -> ModuleType:
    """Import the generated module from ``folder`` (once per process: its descriptors are
    registered in protobuf's global pool)."""
    loaded = sys.modules.get(MODULE_NAME)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(MODULE_NAME, Path(folder) / f"{MODULE_NAME}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no {MODULE_NAME} in {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def compiled_dir() -> Path:
    """A folder holding the generated module, removed when this process exits. A worker
    process is given this folder and imports the same module from it."""
    folder = Path(tempfile.mkdtemp(prefix="functionrpc-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    compile_protos(folder)
    return folder


def protos() -> ModuleType:
    """The FunctionRpc message classes, as the runtime receives them in ``properties``."""
    return import_protos(compiled_dir())
