"""unik-lib-vmimage: kernels, the static init and the initramfs writer shared by unik's VM targets."""

__version__ = "0.1.0"
