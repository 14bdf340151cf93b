"""Build the installable extension zip from the repository root, honouring the manifest's
``[build] paths_exclude_pattern`` (gitignore-like: a leading ``/`` anchors a pattern at the
root, a trailing ``/`` matches folders only, other patterns match any path component).

Usage: python tools/build_extension.py --out dist  ->  dist/prosepose-<version>.zip
The bpy pip package has no ``blender`` binary, so ``blender --command extension build`` is not
available here; this script writes the same layout (manifest at the zip root)."""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ExcludePattern:
    glob: str
    anchored: bool
    folders_only: bool

    @classmethod
    def parse(cls, text: str) -> "ExcludePattern":
        anchored = text.startswith("/")
        folders_only = text.endswith("/")
        return cls(text.strip("/"), anchored, folders_only)

    def matches(self, relative: str, is_folder: bool) -> bool:
        if self.folders_only and not is_folder:
            return False
        if self.anchored or "/" in self.glob:
            return fnmatch.fnmatchcase(relative, self.glob)
        return fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], self.glob)


def read_manifest(root: Path) -> dict:
    with open(root / "blender_manifest.toml", "rb") as handle:
        return tomllib.load(handle)


def included_files(root: Path, patterns: list[ExcludePattern]) -> list[Path]:
    """Every file under ``root`` that no pattern excludes (symbolic links are never followed)."""
    kept: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        folder_path = Path(folder)
        for name in list(subfolders):
            relative = (folder_path / name).relative_to(root).as_posix()
            link = (folder_path / name).is_symlink()
            if link or any(p.matches(relative, True) for p in patterns):
                subfolders.remove(name)
        for name in files:
            path = folder_path / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink() or any(p.matches(relative, False) for p in patterns):
                continue
            kept.append(path)
    return sorted(kept)


def build(root: Path, out_folder: Path) -> Path:
    manifest = read_manifest(root)
    patterns = [ExcludePattern.parse(p) for p in manifest.get("build", {}).get("paths_exclude_pattern", [])]
    out_folder.mkdir(parents=True, exist_ok=True)
    target = out_folder / f"{manifest['id']}-{manifest['version']}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in included_files(root, patterns):
            archive.write(path, path.relative_to(root).as_posix())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip")
    parser.add_argument("--root", type=Path, default=ROOT, help="extension source folder")
    args = parser.parse_args(argv)
    target = build(args.root.resolve(), args.out)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
