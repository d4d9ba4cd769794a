"""GPUS, NODES, NODE_RANK, MASTER: validated (one line per mistake), rendered into Axolotl's own
torchrun launcher, and checked together with the recipe by `troupe check`."""

import pytest

from troupe.cli import main
from troupe.errors import TroupeError
from troupe.launch import Launch, check_master, launch_plan
from troupe.recipe import load_recipe
from troupe.render import resolve


def test_one_machine_needs_nothing_more():
    assert launch_plan() == Launch() and launch_plan("8") == Launch(gpus=8)


def test_several_machines_read_host_port_and_rank():
    assert launch_plan("8", "2", "1", "node0.cluster:29500") == Launch(8, 2, 1, "node0.cluster", 29500)
    assert launch_plan("1", "4", "0", "10.0.0.1:29500") == Launch(1, 4, 0, "10.0.0.1", 29500)
    assert launch_plan("1", "2", "0", "[fd00::1]:29500").endpoint(1) == "[fd00::1]:29501"


@pytest.mark.parametrize(
    "args, message",
    [
        (("0",), "GPUS='0' must be a whole number, 1 or more"),
        (("two",), "GPUS='two' must be a whole number"),
        (("1", "-2"), "NODES='-2' must be a whole number"),
        (("1", "2"), "NODES=2 needs MASTER=<host:port of node 0> and NODE_RANK=<0..1>"),
        (("1", "2", "0"), "NODES=2 needs MASTER"),
        (("1", "2", "2", "h:29500"), "NODE_RANK=2 is not below NODES=2"),
        (("1", "2", "x", "h:29500"), "NODE_RANK='x' must be a whole number, 0 or more"),
        (("1", "2", "0", "h"), "MASTER='h' is not host:port of node 0"),
        (("1", "2", "0", "h:port"), "is not host:port"),
        (("1", "2", "0", "bad_host:29500"), "is not host:port"),
        (("1", "2", "0", "-h:29500"), "is not host:port"),
        (("1", "2", "0", "h;rm -rf ~:29500"), "is not host:port"),
        (("1", "2", "0", "[zz::1]:29500"), "is not host:port"),
        (("1", "2", "0", "h:65535"), "the port must be 1-65534 (the preflight also uses port+1)"),
        (("1", "1", "0"), "NODE_RANK and MASTER are for several machines"),
        (("1", "1", None, "h:29500"), "NODE_RANK and MASTER are for several machines"),
    ],
)
def test_every_mistake_is_one_line_naming_the_variable(args, message):
    with pytest.raises(TroupeError) as caught:
        launch_plan(*args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_node_0_must_be_the_master_and_the_master_must_resolve():
    check_master(Launch(1, 2, 0, "127.0.0.1", 29500))
    check_master(Launch(1, 2, 1, "192.0.2.1", 29500))  # another machine (TEST-NET): fine for node 1
    with pytest.raises(TroupeError, match="NODE_RANK=0 hosts the rendezvous, but MASTER host '192.0.2.1' is not an"):
        check_master(Launch(1, 2, 0, "192.0.2.1", 29500))
    with pytest.raises(TroupeError, match="MASTER host 'nowhere.invalid' does not resolve"):
        check_master(Launch(1, 2, 1, "nowhere.invalid", 29500))


def test_several_machines_launch_through_axolotls_torchrun_with_a_c10d_rendezvous(project):
    recipe = load_recipe("kaltsit")
    node0 = resolve(recipe, cuda=True, parallel="fsdp2", launch=Launch(8, 2, 0, "10.0.0.1", 29500))
    assert node0.launcher_args() == [
        *("--launcher", "torchrun", "--", "--nnodes", "2", "--nproc_per_node", "8", "--rdzv_backend", "c10d"),
        *("--rdzv_endpoint", "10.0.0.1:29500", "--rdzv_id", "troupe", "--rdzv_conf", "is_host=1"),
    ]
    node1 = resolve(recipe, cuda=True, parallel="fsdp2", launch=Launch(8, 2, 1, "10.0.0.1", 29500))
    assert node1.launcher_args()[-1] == "is_host=0" and node1.config == node0.config
    assert node0.env == {} and "× 8 process(es) per node × 2 node(s) = 256 samples per step" in node0.notes[-1]


def test_several_cpu_processes_are_placed_on_the_cpu_and_trained_together(project):
    resolved = resolve(load_recipe("demo"), cuda=False, launch=Launch(1, 2, 0, "127.0.0.1", 29500))
    assert resolved.config["max_memory"] == {"cpu": "1024GiB"} and resolved.env == {"ACCELERATE_USE_CPU": "1"}
    assert resolved.launcher_args()[:3] == ["--launcher", "torchrun", "--"]
    alone = resolve(load_recipe("demo"), cuda=False)
    assert "max_memory" not in alone.config and alone.env == {} and alone.launcher_args() == ["--launcher", "python"]


def test_ray_starts_its_own_workers(project):
    resolved = resolve(load_recipe("kaltsit", ["use_ray=true", "ray_num_workers=4"]), cuda=True)
    assert resolved.launcher_args() == ["--launcher", "python"]


def test_dry_run_prints_each_nodes_commands(project, monkeypatch, capsys):
    monkeypatch.setenv("TROUPE_DEVICE", "cuda")
    args = ["train", "kaltsit", "--gpus", "8", "--parallel", "zero2", "--dry-run"]
    assert main([*args, "--nodes", "2", "--node-rank", "1", "--master", "10.0.0.1:29500"]) == 0
    preflight, train = capsys.readouterr().out.splitlines()[-2:]
    assert preflight == (
        "$ torchrun --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d --rdzv_endpoint 10.0.0.1:29501 "
        "--rdzv_id troupe-preflight --rdzv_conf is_host=0,join_timeout=600 -m troupe.preflight "
        "outputs/kaltsit/preflight.json --wait 600"
    )
    assert train.startswith("$ axolotl train ") and train.endswith(
        "train.dry-run.yaml --launcher torchrun -- --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d "
        "--rdzv_endpoint 10.0.0.1:29500 --rdzv_id troupe --rdzv_conf is_host=0"
    )
    assert "deepspeed:" in (project / "outputs" / "kaltsit" / "train.dry-run.yaml").read_text()
    assert main([*args, "--nodes", "2", "--master", "10.0.0.1:29500"]) == 1
    assert capsys.readouterr().err == (
        "error: NODES=2 needs MASTER=<host:port of node 0> and NODE_RANK=<0..1> "
        "(the same command on every machine, only NODE_RANK differs)\n"
    )


def test_check_validates_the_whole_run_with_axolotls_multi_gpu_rules(project, monkeypatch, capsys):
    """FSDP1 with LoRA kernels is fine for one process and refused by Axolotl for several."""
    monkeypatch.setenv("TROUPE_DEVICE", "cuda")
    fsdp1 = ["fsdp_version=1", "fsdp_config.auto_wrap_policy=TRANSFORMER_BASED_WRAP", "lora_mlp_kernel=true"]
    assert main(["check", "kaltsit", *fsdp1]) == 0
    assert "lora_mlp_kernel" not in capsys.readouterr().err
    assert main(["check", "kaltsit", *fsdp1, "--nodes", "2", "--node-rank", "0", "--master", "h:29500"]) == 1
    assert "lora_mlp_kernel" in capsys.readouterr().err  # the key Axolotl refuses for several processes
    assert main(["check", "kaltsit", "use_ray=true", "--gpus", "4"]) == 1
    assert "use_ray" in capsys.readouterr().err


def test_a_second_stage_on_several_machines_needs_the_first_stage_everywhere(project, capsys):
    assert main(["train", "yoda", "--nodes", "2", "--node-rank", "0", "--master", "127.0.0.1:29500"]) == 1
    err = capsys.readouterr().err
    assert "outputs/leprechaun/adapter/" in err and "every node" in err  # the folder missing, and where it goes
    assert not (project / "outputs" / "yoda").exists()  # refused before a run folder exists
