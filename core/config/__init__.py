"""hr.toml → typed structs (internal; plugins use :class:`hrkernel.types.ConfigStruct`)."""

from hrkernel.config.load import LoadedConfig, load_config, load_config_sections, load_config_text
from hrkernel.config.schema import Config

__all__ = ["Config", "LoadedConfig", "load_config", "load_config_sections", "load_config_text"]
