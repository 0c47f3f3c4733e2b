"""A Jupyter kernel that answers each cell with the outputs the book's build gave it.

``make test`` executes every page once, when it builds the book in the smoke profile
(``built_book``); nbval then checks the committed outputs against what that run
produced instead of executing the page a second time. nbval runs the committed
notebook with this kernel (``--nbval-kernel-name``), which runs no code: it reads the
page as the build executed it (``_build/jupyter_execute/...``, the notebook named by
``ATTNLAB_REPLAY``) and answers each cell's source with that cell's recorded outputs,
errors included, in the messages a Python kernel sends. A source the build did not
execute is answered with an error, so nbval fails the cell.

``install(folder)`` writes its kernel spec under ``folder``; put that folder on
``JUPYTER_PATH`` for nbval to find it.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict, deque
from pathlib import Path

NAME = "attnlab-replay"


def recorded_outputs(path: Path) -> dict[str, deque]:
    """The executed notebook's code cells: source -> outputs, one entry per time the
    source occurs, in order."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, deque] = defaultdict(deque)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = cell["source"]
            found["".join(source) if isinstance(source, list) else source].append(
                cell.get("outputs", [])
            )
    return found


def install(folder: Path) -> Path:
    """Write the kernel's spec to ``folder/kernels/<NAME>/kernel.json``."""
    spec = folder / "kernels" / NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, __file__, "-f", "{connection_file}"],
                "display_name": "Outputs of the book's build",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    return spec


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _data(bundle: dict) -> dict:
    return {
        mime: _text(v) if mime.startswith("text/") else v for mime, v in bundle.items()
    }


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp
    from ipykernel.kernelbase import Kernel

    recorded = recorded_outputs(Path(os.environ["ATTNLAB_REPLAY"]))

    class ReplayKernel(Kernel):
        implementation = NAME
        implementation_version = "1"
        banner = "Replays the outputs of the book's build"
        language_info = {
            "name": "python",
            "mimetype": "text/x-python",
            "file_extension": ".py",
        }

        def do_execute(self, code, silent, store_history=True, *args, **kwargs):
            if not recorded.get(code):
                message = (
                    "the book's build did not execute this cell (is the page built "
                    "from this notebook?)"
                )
                return self._error("NotInTheBuild", message, [message])
            for output in recorded[code].popleft():
                kind = output["output_type"]
                if kind == "stream":
                    content = {"name": output["name"], "text": _text(output["text"])}
                elif kind in ("display_data", "execute_result"):
                    content = {
                        "data": _data(output.get("data", {})),
                        "metadata": output.get("metadata", {}),
                    }
                    if kind == "execute_result":
                        content["execution_count"] = self.execution_count
                else:  # an error the build recorded
                    return self._error(
                        output["ename"], output["evalue"], output["traceback"]
                    )
                self.send_response(self.iopub_socket, kind, content)
            return {
                "status": "ok",
                "execution_count": self.execution_count,
                "payload": [],
                "user_expressions": {},
            }

        def _error(self, ename, evalue, traceback):
            content = {"ename": ename, "evalue": evalue, "traceback": traceback}
            self.send_response(self.iopub_socket, "error", content)
            return {
                "status": "error",
                "execution_count": self.execution_count,
                **content,
            }

    IPKernelApp.launch_instance(kernel_class=ReplayKernel)


if __name__ == "__main__":
    main()
