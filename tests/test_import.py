"""``import stream_derain`` and the derain command work without torch or tensorrt."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'tensorrt', 'tensorrt_rtx'):
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
"""


def test_runtime_does_not_import_torch(make_clip, use_tiny_model, tmp_path):
    clip = make_clip("in.mp4", frames=3, audio=False)
    code = BLOCK + f"""
import stream_derain, stream_derain.derain, stream_derain.cli
from stream_derain.cli import app
from typer.testing import CliRunner
r = CliRunner().invoke(app, ['derain', {str(clip)!r}, '-o', {str(tmp_path / 'o.mp4')!r}, '--no-smooth'])
assert r.exit_code == 0, (r.output, r.exception)
assert sys.modules.get('torch') is None  # never imported (None: the blocked attempt)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_torch_backend_says_which_extra(tmp_path, tiny_model_dir):
    code = BLOCK + f"""
from stream_derain.catalog import load_model_info
from stream_derain.backends import create_backend
from stream_derain.errors import MissingExtraError
from pathlib import Path
try:
    create_backend('torch', load_model_info('tiny', Path({str(tiny_model_dir)!r}))).activate()
except MissingExtraError as e:
    assert '[train]' in str(e), e
else:
    raise SystemExit('no error')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
