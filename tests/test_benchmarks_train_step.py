"""benchmarks/train_step.py: which configurations one command measures and what each child
is told (the timing itself is a benchmark, never a test)."""

from benchmarks import machine, train_step


def test_one_command_measures_every_combination_and_hat_alone_varies_its_attention_path():
    args = train_step.parse_args(["--model", "espcn", "hat-small", "--threads", "1", "2", "--mixed_precision", "no",
                                  "bf16", "--channels_last", "both", "--compile", "--attn_impl", "sdpa", "math"])
    configs = train_step.configurations(args)
    espcn = [c for c in configs if c["model"] == "espcn"]
    hat = [c for c in configs if c["model"] == "hat-small"]
    assert len(espcn) == 2 * 2 * 2 and {c["attn_impl"] for c in espcn} == {None}
    assert len(hat) == 2 * 2 * 2 * 2 and {c["attn_impl"] for c in hat} == {"sdpa", "math"}
    assert {c["compile"] for c in configs} == {True}  # a bare --compile means on
    assert {(c["threads"], c["channels_last"]) for c in hat} == {(1, False), (1, True), (2, False), (2, True)}


def test_each_child_gets_exactly_its_configuration():
    args = train_step.parse_args(["--model", "hat-small", "--batch_size", "8", "--lr_size", "24", "--threads", "1",
                                  "2", "--channels_last", "both", "--attn_impl", "math"])
    config = train_step.configurations(args)[-1]
    child = train_step.parse_args(train_step.child_argv(args, config) + ["--child"])
    assert (child.model, child.batch_size, child.lr_size, child.threads, child.channels_last, child.compile,
            child.attn_impl, child.mixed_precision) == (["hat-small"], 8, 24, [2], "on", "off", ["math"], ["no"])
    espcn = train_step.parse_args(train_step.child_argv(args, {**config, "model": "espcn", "attn_impl": None}))
    assert espcn.attn_impl is None  # ESPCN has no attention path to set


def test_the_header_says_whether_the_cpu_has_native_bf16():
    line = machine.cpu_capability()
    assert line.startswith("CPU capability ") and ("native bf16 (oneDNN): yes" in line or
                                                   "native bf16 (oneDNN): no" in line)
