"""The workload CSV reader: what it accepts, how it reads odd rows, and its one-line errors."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energaizer.errors import InvalidInputError
from energaizer.estimator import estimate_pairs
from energaizer.io.workload_csv import read_workload_csv, row_to_workload


def read(tmp_path, text: str):
    path = tmp_path / "w.csv"
    path.write_text(text)
    return read_workload_csv(path)


def test_numbers_in_any_spelling(tmp_path):
    (row,) = read(
        tmp_path,
        "model,gpu,requests,input_tokens,output_tokens,frequency_mhz\nllama-3.1-8b,h100-sxm,1e3, 128.0 ,64,1500\n",
    )
    inf = row.workload.inference
    assert (inf.requests, inf.input_tokens, inf.output_tokens) == (1000, 128, 64)
    assert row.workload.frequency_mhz == 1500.0 and row.gpu == "h100-sxm" and row.line == 2


@pytest.mark.parametrize(
    ("cell", "precision"),
    [("bfloat16", "bf16"), ("BFloat16", "bf16"), ("float16", "fp16"), ("mxfp4", "fp4"), ("fp8", "fp8")],
)
def test_precision_in_the_spellings_other_tools_write(tmp_path, cell, precision):
    """PyTorch dtypes and the leaderboards' weight precisions (ML.ENERGY: bfloat16, fp8, mxfp4)."""
    (row,) = read(tmp_path, f"model,gpu,precision\ngpt-oss-20b,h100-sxm,{cell}\n")
    assert row.workload.precision == precision


def test_an_unknown_precision_is_an_error_naming_the_field(tmp_path):
    with pytest.raises(InvalidInputError) as err:
        read(tmp_path, "model,gpu,precision\nllama-3.1-8b,h100-sxm,int3\n")
    assert err.value.field == "precision"


def test_blank_lines_short_rows_and_extra_columns(tmp_path):
    rows = read(
        tmp_path,
        "model,gpu,requests,note,measured_energy_joules\n"
        "llama-3.1-8b,h100-sxm\n"
        "\n"
        "llama-3.1-8b,l4,3, keep me ,12.5\n",
    )
    assert [r.line for r in rows] == [2, 4]
    assert rows[0].workload.inference.requests == 1  # the default
    assert rows[0].extra == {"note": None} and rows[0].measured == {}
    assert rows[1].extra == {"note": " keep me "} and rows[1].measured == {"measured_energy_joules": 12.5}


@pytest.mark.parametrize("column", ["requests", "gpu", "measured_energy_joules", "note"])
def test_a_column_named_twice_is_an_error_naming_it(tmp_path, column):
    """Two cells for one field: the reader used to keep the last (DictReader's way) and drop the first
    silently, so ``requests,requests`` with 5 and 7 estimated 7 requests."""
    header = ["model", "gpu", "requests", "measured_energy_joules", "note"]
    header.insert(4, column)
    with pytest.raises(InvalidInputError) as err:
        read(tmp_path, ",".join(header) + "\nllama-3.1-8b,l4,5,100,7,x\n")
    assert err.value.field == column
    first, second = (i for i, name in enumerate(header, start=1) if name == column)
    assert f"line 1: the header names this column twice (columns {first} and {second})" in str(err.value)


def test_spaces_around_column_names_are_not_part_of_them(tmp_path):
    """``model, gpu, requests``: ' requests' was an unknown column, carried through, and the row took the
    default of 1 request."""
    (row,) = read(tmp_path, "model, gpu, requests ,measured_energy_joules, note\nllama-3.1-8b, l4, 10,5,x\n")
    assert row.workload.inference.requests == 10 and row.gpu == "l4"
    assert row.measured == {"measured_energy_joules": 5.0} and row.extra == {"note": "x"}


@pytest.mark.parametrize("column", ["Requests", "GPU", "Measured_Energy_Joules"])
def test_a_contract_column_in_other_letter_case_is_an_error_naming_it(tmp_path, column):
    """``Requests`` was carried through unread (the row took the default); ``GPU`` said only that the header
    lacks a gpu column."""
    header = ["model", "gpu", "requests", "measured_energy_joules"]
    header[[h.lower() for h in header].index(column.lower())] = column
    with pytest.raises(InvalidInputError) as err:
        read(tmp_path, ",".join(header) + "\nllama-3.1-8b,l4,10,5\n")
    assert err.value.field == column
    assert f"line 1: column names are lowercase: write {column.lower()!r}" in str(err.value)


def test_empty_header_cells_are_not_columns_named_twice(tmp_path):
    """Spreadsheets write trailing commas: an empty header cell names no column."""
    (row,) = read(tmp_path, "model,gpu,requests,,\nllama-3.1-8b,l4,5,,\n")
    assert row.workload.inference.requests == 5


def test_row_to_workload_matches_the_file_reader(tmp_path):
    (row,) = read(tmp_path, "model,gpu,task,tokens,sequence_length\ngpt2,a10,training,1e6,512\n")
    workload, gpu, measured = row_to_workload(
        {"model": "gpt2", "gpu": "a10", "task": "training", "tokens": "1e6", "sequence_length": " 512 "}, "x"
    )
    assert workload == row.workload and gpu == "a10" and measured == {}


@pytest.mark.parametrize(
    ("cells", "field", "needle"),
    [
        ("llama-3.1-8b,l4,lots", "requests", "'lots' is not a number"),
        ("llama-3.1-8b,l4,1.5", "requests", "must be a whole number"),
        ("llama-3.1-8b,l4,nan", "requests", "is not a number"),
        ("llama-3.1-8b,l4,inf", "requests", "is not a finite number"),
        ("llama-3.1-8b,l4,-5", "inference.requests", "must be >= 1 (got -5)"),
        ("llama-3.1-8b,l4,3,4", "csv", "more fields than header columns"),
        ("llama-3.1-8b,,3", "gpu", "missing"),
    ],
)
def test_errors_name_field_and_line(tmp_path, cells, field, needle):
    with pytest.raises(InvalidInputError) as info:
        read(tmp_path, "model,gpu,requests\n" + cells + "\n")
    assert info.value.field == field
    assert "line 2" in str(info.value) and needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("gpu", "limit", "clock", "field", "needle"),
    [
        ("a10", "400", "", "power_limit_w", "400 W is outside a10's power-limit range 100-150 W"),
        ("a10", "", "2000", "frequency_mhz", "2000 MHz is outside a10's clock range"),
        ("h100-sxm", "", "10", "frequency_mhz", "10 MHz is outside h100-sxm's clock range"),
    ],
)
def test_what_if_knobs_outside_the_gpus_range_name_the_line(tmp_path, gpu, limit, clock, field, needle):
    """A 20,000-row file with one bad power limit says which row, not only which GPU."""
    text = "model,gpu,requests,power_limit_w,frequency_mhz\nllama-3.1-8b,a10,3,150,900\n"
    with pytest.raises(InvalidInputError) as info:
        read(tmp_path, text + f"llama-3.1-8b,{gpu},3,{limit},{clock}\n")
    assert info.value.field == field
    assert "line 3" in str(info.value) and needle in str(info.value)


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ("qwen3-30b-a3b,h100-sxm,inference,2,4,", "expert_parallel"),
        ("qwen3-30b-a3b,h100-sxm,inference,3,,2", "data_parallel"),
    ],
)
def test_checks_across_columns_name_the_column_to_fix(tmp_path, cells, field):
    with pytest.raises(InvalidInputError) as info:
        read(tmp_path, "model,gpu,task,gpu_count,expert_parallel,data_parallel\n" + cells + "\n")
    assert info.value.field == field and "line 2" in str(info.value)


def test_a_training_row_gives_tokens_or_steps_not_both(tmp_path):
    """Contract section 3: ``steps`` optimizer steps ... (or ``tokens`` in total); a row with both named two
    different sizes and the steps won silently."""
    with pytest.raises(InvalidInputError) as info:
        read(tmp_path, "model,gpu,task,tokens,steps\nllama-3.1-8b,h100-sxm,training,1e6,10\n")
    assert info.value.field == "training.steps" and "line 2" in str(info.value)
    assert "not both" in str(info.value)


def test_the_heads_check_uses_the_engines_tensor_parallelism_on_every_row(tmp_path):
    """With data-parallel engines each engine is tensor parallel over gpu_count / data_parallel (whatever
    tensor_parallel says): the reader checks that split, as the estimator does, on every row whose layout
    differs, so a bad row is named by its line and not caught later without one."""
    head = "model,gpu,task,gpu_count,tensor_parallel,data_parallel\n"
    ok = "llama-1-13b,h100-sxm,inference,8,4,2\n"  # 4 GPUs per engine divide the 40 heads
    with pytest.raises(InvalidInputError) as info:
        read(tmp_path, head + ok + "llama-1-13b,h100-sxm,inference,64,4,2\n")  # 32 per engine do not
    assert info.value.field == "gpu_count" and "line 3" in str(info.value)
    assert "tensor parallel 32 (gpu_count / data_parallel)" in str(info.value)
    assert "40 attention heads" in str(info.value)
    (row,) = read(tmp_path, head + ok)
    assert row.workload.engine_tensor_parallel == 4
    with pytest.raises(InvalidInputError) as info:  # a training row's own tensor parallelism, too
        read(tmp_path, "model,gpu,task,gpu_count,tensor_parallel,tokens\nqwen2.5-7b,a10,training,8,8,1e9\n")
    assert info.value.field == "tensor_parallel" and "line 2" in str(info.value)
    assert "28 attention heads" in str(info.value) and "7" in info.value.allowed


def test_the_other_tasks_sizes_are_named_with_the_row_kind(tmp_path):
    with pytest.raises(InvalidInputError, match="a training size in an inference row"):
        read(tmp_path, "model,gpu,task,steps\nllama-3.1-8b,l4,inference,3\n")
    with pytest.raises(InvalidInputError, match="an inference size in a training row"):
        read(tmp_path, "model,gpu,task,requests\ngpt2,l4,training,3\n")


@pytest.mark.parametrize(
    ("cell", "scored"), [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("", False)]
)
def test_prompt_logits_column_reads_yes_or_no(tmp_path, cell, scored):
    (row,) = read(tmp_path, f"model,gpu,output_tokens,prompt_logits\nqwen2-1.5b,h100-sxm,0,{cell}\n")
    assert row.workload.inference.prompt_logits is scored


@pytest.mark.parametrize(
    ("valid", "bad", "needle"),
    [
        (
            "qwen2-1.5b,inference,0,,",
            "qwen2-1.5b,inference,0,,maybe",
            "'maybe' is not true or false (allowed: 1,",
        ),
        ("qwen2-1.5b,training,,1,", "qwen2-1.5b,training,,1,1", "an inference column in a training row"),
        ("vit-large,inference,0,,", "vit-large,inference,0,,1", "vit-large has no vocabulary to project the"),
    ],
)
def test_prompt_logits_errors_name_the_column_and_line(tmp_path, valid, bad, needle):
    """Checked on every row: the layout check is cached per model and layout, so line 3 repeats one that
    line 2 made valid without the flag."""
    header = "model,task,output_tokens,steps,prompt_logits,gpu\n"
    with pytest.raises(InvalidInputError) as info:
        read(tmp_path, f"{header}{valid},h100-sxm\n{bad},h100-sxm\n")
    assert info.value.field == "prompt_logits"
    assert "line 3" in str(info.value) and needle in str(info.value)


@st.composite
def layout_rows(draw):
    """A CSV row with an arbitrary parallel layout (many of them invalid) for models of 12-64 heads."""
    model = draw(
        st.sampled_from(["llama-1-13b", "qwen2.5-7b", "llama-3.1-8b", "qwen3-30b-a3b", "gpt2", "resnet-50"])
    )
    count = draw(st.sampled_from([1, 2, 3, 4, 8, 16, 64]))
    tp, ep, dp = (draw(st.sampled_from(["", 1, 2, 4, 8, 16])) for _ in range(3))
    if draw(st.booleans()):
        sizes = f"inference,{draw(st.sampled_from([1, 64]))},512,128,{draw(st.sampled_from([1, 32]))},,"
    else:
        sizes = f"training,,,,,1e9,{draw(st.sampled_from([1, 8, 256]))}"
    return f"{model},h100-sxm,{count},{sizes},{tp},{ep},{dp}\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=layout_rows())
def test_a_row_the_reader_accepts_the_estimator_accepts(row):
    """The reader's layout checks are the estimator's (which would reject the whole batch without naming the
    line): a row either fails in the reader, naming its line, or estimates."""
    head = "model,gpu,gpu_count,task,requests,input_tokens,output_tokens,batch_size,tokens,global_batch_size,"
    text = head + "tensor_parallel,expert_parallel,data_parallel\n" + row
    try:
        (parsed,) = read_workload_csv(io.StringIO(text))
    except InvalidInputError as exc:
        assert "line 2" in str(exc)
        return
    estimate_pairs([parsed.workload], [parsed.gpu])
