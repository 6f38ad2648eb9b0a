"""Shared fixtures for the CLI tests: the command run as a user runs it, and a folder of malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

MEASURED_HEADER = "model,gpu,requests,input_tokens,output_tokens,batch_size,measured_energy_joules\n"

# name -> content (bytes are written as is)
BAD_FILES: dict[str, str | bytes] = {
    "binary.bin": bytes(range(256)) * 4,
    "binary.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
    "binary.json": b"\x00\x01\x02{}",
    "latin1.yaml": "layers: 32\nhidden: 4096\nname: caf\xe9\n".encode("latin-1"),
    "latin1.json": '{"name": "caf\xe9"}'.encode("latin-1"),
    "latin1.csv": "model,gpu\nllama-3.1-8b,caf\xe9\n".encode("latin-1"),
    "utf16.csv": "model,gpu\nllama-3.1-8b,h100-sxm\n".encode("utf-16"),
    "empty.txt": "",
    "catalog_empty.yaml": "# our GPUs and models: none yet\n",
    "catalog_empty.json": "{}",
    "list.yaml": "- 1\n- 2\n",
    "scalar.json": "42",
    "bad.yaml": "a: [1, 2\nb: {",
    "bad.json": '{"layers": 32,',
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "bigint.json": '{"layers": ' + "9" * 5000 + "}",  # beyond int()'s 4300 digits: a ValueError
    "bigint.yaml": "gpus:\n  - sm_count: " + "9" * 5000 + "\n",
    "arch_nan.yaml": "layers: .nan\nhidden: 4096\nheads: 32\nffn: 14336\nvocab: 128256\n",
    "arch_negative.yaml": "layers: -4\nhidden: 4096\nheads: 32\nffn: 14336\nvocab: 128256\n",
    "arch_huge.yaml": "layers: 100000000000000000000\nhidden: 4096\nheads: 32\nffn: 14336\nvocab: 128256\n",
    "arch_text.yaml": "layers: many\nhidden: 4096\nheads: 32\n",
    "arch_heads.yaml": "layers: 4\nhidden: 512\nheads: 1024\nffn: 2048\nvocab: 32000\n",  # head_dim 512 // 1024 = 0
    "profile_nan.json": '{"compute_efficiency": NaN}',
    "profile_neg.json": '{"compute_efficiency": -1}',
    "profile_unknown.json": '{"no_such_parameter": 1}',
    # a key named twice: the parsers kept the last value and dropped the first silently
    "arch_dupkey.yaml": "layers: 32\nhidden: 4096\nheads: 32\nffn: 14336\nvocab: 128256\nlayers: 4\n",
    "arch_dupkey.json": '{"layers": 32, "hidden": 4096, "heads": 32, "ffn": 14336, "vocab": 128256, "layers": 4}',
    "profile_dupkey.json": '{"compute_efficiency": 0.5, "compute_efficiency": 0.6}',
    "catalog_dupkey.yaml": "gpus:\n  - {id: x1, id: x2}\n",
    "pools_dupkey.yaml": "- {gpu: h100-sxm, nodes: 1, gpus_per_node: 8, gpu: l4}\n",
    "catalog_bad.yaml": "gpus:\n  - {id: x1, tdp_w: -5}\n",
    "catalog_key.yaml": "nonsense: []\n",
    "pools_neg.yaml": "- {gpu: h100-sxm, nodes: -1, gpus_per_node: 8}\n",
    "pools_nan.yaml": "- {gpu: h100-sxm, nodes: .nan, gpus_per_node: 8}\n",
    "pools_gpu.yaml": "- {gpu: nosuch, nodes: 1, gpus_per_node: 8}\n",
    "pools_huge.yaml": "- {gpu: h100-sxm, nodes: 1000000000000, gpus_per_node: 8}\n",
    "trace_nan.csv": "submit_time_s,gpu_count,duration_s\nnan,1,10\n",
    "trace_inf.csv": "submit_time_s,gpu_count,duration_s\n0,1,inf\n",
    "trace_neg.csv": "submit_time_s,gpu_count,duration_s\n0,-1,10\n",
    "trace_nohdr.csv": "a,b\n1,2\n",
    "w_nan.csv": "model,gpu,frequency_mhz\nllama-3.1-8b,h100-sxm,nan\n",
    "w_inf.csv": "model,gpu,tokens,task\nllama-3.1-8b,h100-sxm,inf,training\n",
    "w_neg.csv": "model,gpu,requests\nllama-3.1-8b,h100-sxm,-3\n",
    "w_huge.csv": "model,gpu,gpu_count\nllama-3.1-8b,h100-sxm,1000\n",
    "w_mix.csv": "model,gpu,task,requests,tokens\nllama-3.1-8b,h100-sxm,training,5,1e9\n",
    "w_gpu.csv": "model,gpu\nllama-3.1-8b,h900\n",
    "w_model.csv": "model,gpu\nno-such-model,h100-sxm\n",
    "w_ragged.csv": "model,gpu\nllama-3.1-8b,h100-sxm,extra\n",
    "w_header_only.csv": "model,gpu\n",
    "w_nul.csv": "model,gpu\nllama\x00,h100-sxm\n",
    "m_unmeasured.csv": "model,gpu,requests\nllama-3.1-8b,h100-sxm,10\n",
    "m_negative.csv": MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,-500\n",
    "m_zero.csv": MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,0\n",
    "m_nan.csv": MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,nan\n",
    "m_empty_cell.csv": MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,\n",
    "m_one.csv": MEASURED_HEADER + "llama-3.1-8b,h100-sxm,10,128,64,1,500\n",
    "m_dup.csv": MEASURED_HEADER.replace("requests,", "requests,requests,")
    + "llama-3.1-8b,h100-sxm,10,20,128,64,1,500\n",
    "trace_dup.csv": "submit_time_s,gpu_count,duration_s,gpu_count\n0,1,10,4\n",
    "trace_dup_id.csv": "job_id,submit_time_s,gpu_count,duration_s\na,0,1,10\nb,5,1,10\na,9,2,10\n",
    "m_infeasible.csv": MEASURED_HEADER
    + "llama-3.1-405b,t4,10,128,64,1,500\nllama-3.1-405b,l4,10,128,64,1,500\n",
}


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    for name, content in BAD_FILES.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    (folder / "a-folder").mkdir()
    (folder / "plain-file").write_text("x")
    return folder
