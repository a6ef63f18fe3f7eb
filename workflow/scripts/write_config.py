"""Write the validated config (defaults filled in) for the CLI steps to read."""

import yaml

from joblog import redirect_to_log

redirect_to_log(snakemake.log[0])  # noqa: F821 (snakemake injects the object)
with open(snakemake.output[0], "w") as out:  # noqa: F821
    yaml.safe_dump(dict(snakemake.params.config), out, sort_keys=False)  # noqa: F821
print(f"wrote {snakemake.output[0]}")  # noqa: F821
