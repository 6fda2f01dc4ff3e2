"""The repository's own configuration: the plugin is pointed at the worked example in
sql/ through [tool.rlscheck] in pyproject.toml; pytester drives plugin-level tests."""
