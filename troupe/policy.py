"""The safety policy: what a recipe may do without the user's `--allow-unsafe` (ALLOW_UNSAFE=1).
SECURITY.md says why; this module is the boundary.

    findings = policy.problems(recipe.axolotl, recipe.troupe, recipe.root, "recipes/x.yaml")

Default-deny. Every Axolotl key a recipe sets must be on the reviewed table below, and its value
must be of the kind the table allows: a number, switch or name Axolotl checks against its own lists
(`INERT`), a hub id or a folder inside the project (`MODEL`), a transformers class name
(`IDENTIFIER`), one of a fixed set of names (`CHOICES`), an inline chat template or a file inside
the project (`TEMPLATE`), one of the shipped multi-GPU files (`PARALLEL`), or a path troupe renders
from the slug (`RENDERED`, checked by troupe.layout). Keys that run code, reach the network or
publish, read files troupe does not manage, or that nobody has reviewed yet, are refused with the
reason. `datasets[]` entries, plugins and the `troupe:` block have their own allowlists.

The policy reads the raw recipe only: it imports nothing from Axolotl and nothing a recipe names
(prompt strategies are looked up as files in Axolotl's package), so it runs before anything else.
tests/test_policy.py fails when Axolotl gains a key this table has not classified.
"""

import functools
import importlib.util
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from troupe.errors import Kind, Problem
from troupe.layout import (
    RENDERED_ENTRY_KEY,
    RENDERED_KEYS,
    SPLIT_OF_LIST,
    Place,
    base_folder_problem,
    base_model_location,
)

FIX = "remove it, or run with --allow-unsafe (ALLOW_UNSAFE=1) if you trust this recipe"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STRATEGY_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*(:[A-Za-z0-9_]+)?$")
PARALLEL_DIR = "configs/parallel"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ---- the reviewed table of Axolotl 0.19 keys ------------------------------------------------------

INERT = _names("""
    seed sequence_len eval_sequence_len min_sample_len max_prompt_len excess_length_strategy
    max_packed_sequence_len sample_packing sample_packing_group_size sample_packing_bin_size
    sample_packing_sequentially sample_packing_mp_start_method eval_sample_packing pad_to_sequence_len
    pad_to_multiple_of curriculum_sampling multipack_real_batches batch_flattening use_pose
    pose_split_on_token_ids pose_max_context_len pose_num_chunks pretrain_multipack_buffer_size
    pretrain_multipack_attn pretraining_sample_concatenation streaming streaming_multipack_buffer_size
    num_epochs max_steps micro_batch_size gradient_accumulation_steps batch_size eval_batch_size
    auto_find_batch_size train_on_inputs group_by_length learning_rate embedding_lr embedding_lr_scale
    weight_decay optimizer optim_args optim_target_modules lr_scheduler lr_scheduler_kwargs
    lr_quadratic_warmup cosine_min_lr_ratio cosine_constant_lr_ratio lr_div_factor lr_groups
    warmup_steps warmup_ratio max_grad_norm adam_epsilon adam_epsilon2 adam_beta1 adam_beta2 adam_beta3
    dion_lr dion_momentum dion_rank_fraction dion_rank_multiple_of qgalore_rank qgalore_update_proj_gap
    qgalore_scale qgalore_proj_type qgalore_proj_quant qgalore_proj_bits qgalore_proj_group_size
    qgalore_cos_threshold qgalore_gamma_proj qgalore_queue_size jagged_restart_steps
    jagged_restart_warmup_steps jagged_restart_anneal_steps relora relora_prune_ratio
    relora_prune_method relora_cpu_offload lisa_n_layers lisa_step_interval lisa_layers_attribute
    neftune_noise_alpha noisy_embedding_alpha loss_watchdog_threshold loss_watchdog_patience
    adapter lora_r lora_alpha lora_dropout lora_fan_in_fan_out lora_target_modules lora_target_parameters
    lora_target_linear lora_modules_to_save lora_rank_pattern lora_alpha_pattern peft_layers_to_transform
    peft_layers_pattern peft peft_use_dora peft_use_rslora peft_layer_replication peft_init_lora_weights
    peft_trainable_token_indices peft_ensure_weight_tying peft_autocast_adapter_dtype
    qlora_sharded_model_loading lora_on_cpu loraplus_lr_ratio loraplus_lr_embedding merge_lora
    merge_method load_in_8bit load_in_4bit gptq bnb_config_kwargs model_quantization_config
    save_safetensors strict revision_of_model model_revision tokenizer_use_fast tokenizer_legacy
    tokenizer_use_mistral_common tokenizer_save_jinja_files experimental_skip_move_to_device
    resize_token_embeddings_to_32x mean_resizing_embeddings shrink_embeddings embeddings_skip_upcast
    reinit_weights rope_scaling image_size image_resize_algorithm role_boundaries freeze_mm_modules
    unfrozen_parameters special_tokens tokens added_tokens_overrides fix_untrained_tokens
    chat_template chat_template_kwargs eot_tokens default_system_message
    bf16 fp16 fp8 fp8_config fp8_enable_fsdp_float8_all_gather bfloat16 float16 tf32 float32
    gradient_checkpointing gradient_checkpointing_kwargs selective_checkpointing activation_offloading
    layer_offloading low_cpu_mem_usage max_memory gpu_memory_limit device device_map
    xformers_attention sdp_attention flex_attention flex_attn_compile_kwargs flash_attention
    flash_attn_cross_entropy flash_attn_rms_norm flash_attn_fuse_mlp flash_optimum sage_attention
    eager_attention s2_attention gemma4_hybrid_attn_impl flash_attn_d512 sdpa_varlen fused_attn_kernel
    ple_cpu_offload quantize_moe_experts scaling_softmax scaling_softmax_factor scaling_softmax_bias
    lora_mlp_kernel lora_qkv_kernel lora_o_kernel lora_embedding_kernel chunked_cross_entropy
    chunked_cross_entropy_num_chunks use_eaft eaft_alpha eaft_k tiled_mlp tiled_mlp_num_shards
    tiled_mlp_use_original_mlp llama4_linearized_experts
    torch_compile torch_compile_backend torch_compile_mode torch_compile_options
    deepcompile fsdp fsdp_config fsdp_version fp32_norms fp32_norm_classes fsdp_final_state_dict_type
    dp_shard_size dp_replicate_size sequence_parallel_degree context_parallel_size heads_k_stride
    ring_attn_func tensor_parallel_size world_size local_rank ddp ddp_timeout ddp_bucket_cap_mb
    ddp_broadcast_buffers ddp_find_unused_parameters accelerator_config
    use_ray ray_run_name ray_num_workers resources_per_worker
    shuffle_merged_datasets shuffle_before_merging_datasets dataset_shard_num dataset_shard_idx
    skip_prepare_dataset num_dataset_shards_to_save dataset_processes dataset_num_proc
    dataset_exact_deduplication dataset_keep_in_memory dataloader_pin_memory dataloader_num_workers
    dataloader_prefetch_factor dataloader_drop_last remove_unused_columns val_set_size
    eval_steps evals_per_epoch eval_strategy evaluation_strategy eval_table_size eval_max_new_tokens
    save_steps saves_per_epoch save_strategy save_total_limit save_first_step save_only_model
    logging_steps early_stopping_patience load_best_model_at_end metric_for_best_model
    greater_is_better auto_resume_from_checkpoints use_tensorboard profiler_steps profiler_steps_start
    include_tokens_per_second include_tkps gc_steps torch_empty_cache_steps gc_collect_steps
    generate_samples num_generation_samples generation_max_new_tokens generation_temperature
    generation_top_p generation_top_k generation_prompt_ratio generation_do_sample
    wandb_name wandb_run_id wandb_mode wandb_watch
    rl reward_model process_reward_model center_rewards_coefficient num_labels qat quantization
    rl_beta dpo_beta dpo_use_weighting dpo_label_smoothing dpo_use_logits_to_keep dpo_generate_during_eval
    dpo_norm_loss dpo_use_liger_kernel dpo_padding_free dpo_loss_type dpo_loss_weights rpo_alpha
    precompute_ref_log_probs orpo_alpha simpo_gamma cpo_alpha kto_desirable_weight kto_undesirable_weight
    is_falcon_derived_model is_llama_derived_model is_mistral_derived_model is_qwen_derived_model
    is_preprocess preprocess_iterable total_num_tokens total_supervised_tokens sample_packing_eff_est
    liger_rope liger_rms_norm liger_rms_norm_gated liger_layer_norm liger_swiglu liger_glu_activation
    liger_cross_entropy liger_fused_linear_cross_entropy liger_use_token_scaling liger_kernel_impl
    cut_cross_entropy
""")
MODEL = _names("base_model base_model_config tokenizer_config")  # a hub id, or a folder inside the project
IDENTIFIER = _names("type_of_model model_type tokenizer_type processor_type cls_model_config")  # transformers names
TEMPLATE = _names("chat_template_jinja")  # inline Jinja, or a file inside the project
PARALLEL = _names("deepspeed")  # one of configs/parallel/*.json
RENDERED = frozenset(RENDERED_KEYS) | frozenset(SPLIT_OF_LIST)  # troupe.layout fills them in from the slug
PLUGINS = _names("plugins")
CHOICES = {
    "attn_implementation": _names("""eager sdpa flash_attention_2 flash_attention_3 flash_attention_4
        flash_attention_torch flex_attention xformers sage fp8"""),  # never a hub kernel repository
    "large_head_attention": _names("sdpa auto triton_flash"),
    "experts_implementation": _names("eager grouped_mm batched_mm"),
}
# W&B logs a run (with the user's login) only when `use_wandb` or `wandb_project` turns it on
# (Axolotl's setup_wandb_env_vars): those two are refused; wandb_name, wandb_mode … stay inert.
DENIED = {
    "runs Python code that is not Axolotl's or troupe's": _names("""
        trust_remote_code trainer_cls torchdistx_path use_kernels trl ebft use_onebitllms"""),
    "passes settings unchecked into model loading (where remote code and hub kernels are turned on)": _names("""
        overrides_of_model_config model_config overrides_of_model_kwargs model_kwargs processor_kwargs
        model_quantization_config_kwargs dynamic_checkpoint"""),
    "publishes the model, the data or the run outside this machine": _names("""
        hub_model_id hub_strategy hub_revision push_dataset_to_hub wandb_entity wandb_log_model
        use_wandb wandb_project
        use_mlflow mlflow_tracking_uri mlflow_experiment_name mlflow_run_name hf_mlflow_log_artifacts
        use_comet comet_api_key comet_workspace comet_project_name comet_experiment_key comet_mode
        comet_online comet_experiment_config use_trackio trackio_project_name trackio_run_name
        trackio_space_id use_otel_metrics otel_metrics_host otel_metrics_port gradio_title gradio_share
        gradio_server_name gradio_server_port gradio_max_new_tokens gradio_temperature vllm"""),
    "reads data, checkpoints or code that troupe does not build (files, the hub, metric scripts)": _names("""
        resume_from_checkpoint pretraining_dataset bench_dataset bench_split do_bench_eval
        do_causal_lm_eval eval_causal_lm_metrics hf_use_auth_token axolotl_config_path"""),
}
PROMPT_HANDLERS = _names("alpaca explainchoice concisechoice summarizetldr jeopardy oasst gpteacher reflection")
REVIEWED_PLUGINS = frozenset(
    {"axolotl.integrations.liger.LigerPlugin", "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"}
)

# `datasets[]` / `test_datasets[]` entries: the fields that describe a local split troupe wrote.
DATASET_INERT = _names("""
    split shards shards_idx preprocess_shards conversation chat_template input_format ds_type field
    field_human field_model field_messages field_tools field_thinking template_thinking_key
    message_field_role message_field_content message_property_mappings message_field_training
    message_field_training_detail split_thinking logprobs_field temperature roles_to_train train_on_eos
    train_on_eot roles drop_system_message input_transform
""")
DATASET_RENDERED = frozenset({RENDERED_ENTRY_KEY})
DATASET_DENIED = {
    "runs Python code that is not Axolotl's": _names("trust_remote_code"),
    "reads files or hub data that troupe does not build": _names("data_files name revision"),
}


@functools.cache
def denied_reasons() -> dict[str, str]:
    return {key: reason for reason, keys in DENIED.items() for key in keys}


@functools.cache
def dataset_denied_reasons() -> dict[str, str]:
    return {key: reason for reason, keys in DATASET_DENIED.items() for key in keys}


def classified_keys() -> frozenset[str]:
    """Every top-level key the table decides on (allowed or refused)."""
    allowed = INERT | MODEL | IDENTIFIER | TEMPLATE | PARALLEL | RENDERED | PLUGINS | frozenset(CHOICES)
    return allowed | frozenset(denied_reasons())


def classified_dataset_keys() -> frozenset[str]:
    return DATASET_INERT | DATASET_RENDERED | TEMPLATE | {"type"} | frozenset(dataset_denied_reasons())


# ---- values --------------------------------------------------------------------------------------


def outside(value: str, root: Path) -> str | None:
    """Why a path would leave the project (or reach a hidden folder such as .git), or cannot be a
    path at all (a NUL byte, which every file function refuses with an exception), or None."""
    if "\0" in value:
        return "contains a NUL byte"
    if value.startswith(("/", "~", "\\")) or (len(value) > 1 and value[1] == ":"):
        return "is an absolute path"
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if ".." in parts:
        return "contains '..'"
    if any(part.startswith(".") for part in parts):
        return "reaches a hidden file or folder"
    if not (root / value).resolve().is_relative_to(root.resolve()):
        return "leads outside the project (through a link)"
    return None


def is_inline_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def model_problem(value: object, root: Path) -> str | None:
    """A base model or tokenizer: a hub id ("org/name"), or a folder inside the project."""
    if not isinstance(value, str) or not value:
        return None  # a wrong type is Axolotl's validator's to report
    if why := base_folder_problem(value):
        return why
    if "\0" in value:  # no path at all: base_model_location has no answer for it
        return f"'{value}' {outside(value, root)}"
    location = base_model_location(value, root)
    if location.place is Place.HUB and (HUB_ID_RE.match(value) or IDENTIFIER_RE.match(value)):
        return None
    why = outside(value, root)
    if why or location.is_local:
        return f"'{value}' {why}" if why else None
    return f"'{value}' is neither a hub id (org/name) nor a folder in the project"


def template_problem(value: object, root: Path) -> str | None:
    if not isinstance(value, str) or is_inline_template(value):
        return None
    why = outside(value, root)
    return f"template file '{value}' {why}" if why else None


def parallel_problem(value: object) -> str | None:
    if isinstance(value, str) and PurePosixPath(value).parent.as_posix() == PARALLEL_DIR and value.endswith(".json"):
        return None
    return f"DeepSpeed settings other than the shipped {PARALLEL_DIR}/*.json files (PARALLEL=…) can write anywhere"


@functools.cache
def strategies_dir() -> Path:
    """axolotl/prompt_strategies, found without importing Axolotl."""
    spec = importlib.util.find_spec("axolotl")
    return Path(spec.submodule_search_locations[0]) / "prompt_strategies"


def strategy_problem(kind: object) -> str | None:
    """A dataset `type` must name one of Axolotl's own prompt strategies (Axolotl imports what it
    names; a dotted name outside its package would import any module)."""
    if kind is None or isinstance(kind, dict):  # a dict is a user-defined prompt: plain format strings
        return None
    if isinstance(kind, str) and kind.partition(":")[0] in PROMPT_HANDLERS:  # Axolotl's built-in formats
        return None
    if isinstance(kind, str) and STRATEGY_RE.match(kind):
        parts = kind.partition(":")[0].split(".")
        if len(parts) > 1 and parts[-1].startswith("load"):
            parts = parts[:-1]
        module = strategies_dir().joinpath(*parts)
        if module.with_suffix(".py").is_file() or (module / "__init__.py").is_file():
            return None
    return f"'{kind}' is not one of Axolotl's prompt strategies (it would import Python code)"


# ---- the findings --------------------------------------------------------------------------------


def problems(config: dict, block: dict, root: Path, where: str) -> list[Problem]:
    """Every policy finding of one recipe: its Axolotl keys `config` and its `troupe:` block."""
    found = [*_key_findings(config, root), *_dataset_findings(config, root), *_source_findings(block, root)]
    return [Problem(where, key, f"unsafe: {why}", FIX, kind) for key, why, kind in found]


def _key_findings(config: dict, root: Path):
    for key, value in config.items():
        if why := key_problem(key, value, root):
            yield key, why, Kind.UNSAFE if key in classified_keys() else Kind.UNREVIEWED


def key_problem(key: str, value: object, root: Path) -> str | None:
    """Why one top-level key with this value is refused, or None."""
    if key in denied_reasons():
        return None if value in (None, False, "", [], {}) else denied_reasons()[key]
    if key in INERT or key in RENDERED:
        return None
    if key in MODEL:
        return model_problem(value, root)
    if key in IDENTIFIER:
        ok = value is None or (isinstance(value, str) and IDENTIFIER_RE.match(value))
        return None if ok else f"'{value}' is not a transformers class name"
    if key in CHOICES:
        ok = value is None or (isinstance(value, str) and value in CHOICES[key])
        return None if ok else f"'{value}' is not one of {sorted(CHOICES[key])}"
    if key in TEMPLATE:
        return template_problem(value, root)
    if key in PARALLEL:
        return None if value is None else parallel_problem(value)
    if key in PLUGINS:
        return plugins_problem(value)
    return "not on troupe's list of Axolotl keys reviewed as safe (troupe/policy.py)"


def plugins_problem(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        return "must be a list of plugin class names"
    unknown = [p for p in value if p not in REVIEWED_PLUGINS]
    return f"plugin(s) {unknown} are Python code troupe has not reviewed" if unknown else None


def _dataset_findings(config: dict, root: Path):
    for list_name in SPLIT_OF_LIST:
        entries = config.get(list_name)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                yield from ((f"{list_name}[{i}].{key}", *finding) for key, *finding in _entry_findings(entry, root))


def _entry_findings(entry: dict, root: Path):
    for key, value in entry.items():
        if key in dataset_denied_reasons():
            if value not in (None, False, "", []):
                yield key, dataset_denied_reasons()[key], Kind.UNSAFE
        elif key == "type":
            if why := strategy_problem(value):
                yield key, why, Kind.UNSAFE
        elif key in TEMPLATE:
            if why := template_problem(value, root):
                yield key, why, Kind.UNSAFE
        elif key not in DATASET_INERT | DATASET_RENDERED:
            yield key, "not on troupe's list of dataset fields reviewed as safe (troupe/policy.py)", Kind.UNREVIEWED


def _source_findings(block: dict, root: Path):
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    files = source.get("files")
    for value in files if isinstance(files, list) else [files]:
        if isinstance(value, str) and (why := outside(value, root)):
            yield "troupe.source.files", f"path '{value}' {why}", Kind.UNSAFE
    url = source.get("base_url")
    if isinstance(url, str) and (why := url_problem(url)):
        yield "troupe.source.base_url", why, Kind.UNSAFE


def url_problem(url: str) -> str | None:
    """Story mirrors are https; plain http only on this machine (tests, local mirrors)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS):
        return None
    return f"'{url}' is not https (http is allowed only for 127.0.0.1/localhost)"
