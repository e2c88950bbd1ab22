"""unik-target-virtio: unik applications as VMs booted by QEMU/KVM."""

__version__ = "0.1.0"
