"""unik-lib-vmguest: the device implementations that run inside unik's VM images.

The generated ``main.py`` imports them; nothing here builds or boots an image (that is
unik-lib-vmimage, which the image does not carry).
"""

__version__ = "0.1.0"
