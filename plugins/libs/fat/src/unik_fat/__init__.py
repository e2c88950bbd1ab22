"""unik-lib-fat: a FAT12/16/32 filesystem with VFAT long names over any ``Block`` device."""

__version__ = "0.1.0"
