# SPDX-License-Identifier: MIT
"""A stage: its definition (:mod:`.definition`, a rendered ``stage.yaml``) and its run on a
root tree with the key that names the result (:mod:`.run`), side by side."""

from .definition import CopySpec, FileSpec, Stage, load_stage, load_stages, template_env

__all__ = ["CopySpec", "FileSpec", "Stage", "load_stage", "load_stages", "template_env"]
