"""Build the shipped Azure LLM inference extract used by the demo's serving jobs.

Source: ``azure_llm_inference_2023.csv`` of the shared traces (Azure/AzurePublicDataset
``data/AzureLLMInferenceTrace_{code,conv}.csv``, CC BY 4.0). The extract keeps every request but
only the columns ``service, t_s, input_tokens, output_tokens`` (``t_s`` rounded to milliseconds;
the verbatim ``TIMESTAMP`` column is dropped), gzip-compressed. Rebuild with::

    python tools/azure_extract.py ../shared/traces/azure_llm_inference_2023.csv \\
        -o energaizer/data/demo/azure_llm_inference_2023.csv.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

COLUMNS = ("service", "t_s", "input_tokens", "output_tokens")


def build(source: str | Path, output: str | Path) -> int:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    with open(source, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            writer.writerow(
                [
                    row["service"],
                    f"{float(row['t_s']):.3f}",
                    int(row["input_tokens"]),
                    int(row["output_tokens"]),
                ]
            )
            n += 1
    # mtime=0: the same input gives byte-identical output
    with (
        open(output, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz,
    ):
        gz.write(out.getvalue().encode("utf-8"))
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    print(f"{build(args.source, args.output)} requests -> {args.output}")


if __name__ == "__main__":
    main()
