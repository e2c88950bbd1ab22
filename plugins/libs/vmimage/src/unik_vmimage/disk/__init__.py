"""Bootable disk images: the GPT, the EFI system partition, the unified kernel image, the disk formats."""
