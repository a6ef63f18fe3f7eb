# BACL reproduction: every table and figure of the report from one command.
#   snakemake --cores all                                   CPU scale (workflow/config/default.yaml)
#   snakemake --cores all --configfile workflow/config/smoke.yaml
#   snakemake --profile workflow/profiles/slurm --configfile workflow/config/gpu.yaml
from pathlib import Path

import yaml
from snakemake.utils import min_version, validate

from bacl.config import check_config, merge_base

min_version("9.0")

# A config given on the command line replaces the default instead of being merged into it; a
# config with `base: FILE` (e.g. smoke.yaml) is that file plus its own values.
if not config:
    config.update(yaml.safe_load(Path("workflow/config/default.yaml").read_text()))
resolved = merge_base(dict(config), "workflow/config")
config.clear()
config.update(resolved)
validate(config, "workflow/schemas/config.schema.yaml")
# The rules the schema cannot state (keys that join, method overrides, table rows), before any job.
check_config(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/encoders.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/realdata.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/paper_tables.smk"
include: "workflow/rules/paper_figures.smk"


rule all:
    input:
        all_eval_files(),
        PAPER_OUTPUTS,
        PROBE_OUTPUTS,
