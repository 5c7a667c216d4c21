"""Writes `checksums.tsv` from a byte-identical copy of the OSIE release.

    python -m aesthal.datasets.osie.record_checksums ../shared/data/osie

GitHub serves each file of a commit byte for byte, so hashing the local copy
records what the builder will download (`upstream_files()`), without a
network. One line per file in TFDS's format: url, size, sha256, file name.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

from aesthal.datasets.osie import osie_dataset_builder

CHECKSUMS = pathlib.Path(__file__).resolve().parent / "checksums.tsv"


def checksum_lines(osie_dir: pathlib.Path) -> list[str]:
    """`url<TAB>size<TAB>sha256<TAB>filename` for every upstream file.

    Raises:
        FileNotFoundError: naming every file of the release absent from
            `osie_dir`.
    """
    files = osie_dataset_builder.upstream_files()
    missing = [path for path in files if not (osie_dir / path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{osie_dir}: {len(missing)} file(s) of the OSIE release missing, "
            f"e.g. {', '.join(missing[:3])}"
        )
    lines = []
    for path, url in sorted(files.items(), key=lambda item: item[1]):
        data = (osie_dir / path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        lines.append(f"{url}\t{len(data)}\t{digest}\t{pathlib.PurePath(path).name}")
    return lines


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m {__spec__.name} <osie_dir>")
    CHECKSUMS.write_text("\n".join(checksum_lines(pathlib.Path(argv[1]))) + "\n")
    print(f"wrote {CHECKSUMS}")


if __name__ == "__main__":
    main(sys.argv)
