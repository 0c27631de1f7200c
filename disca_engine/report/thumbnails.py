"""Small grey PNGs (as data URIs) of three orthogonal central slices of a subtomogram, for
the hover pictures of the interactive embedding. Encoded here with zlib: matplotlib's
savefig costs ~10 ms a picture, too much for thousands."""
import base64
import struct
import zlib

import numpy as np

SIDE = 24  # pixels per slice at most: three slices fit a tooltip and stay ~1 kB


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def gray_png(img):
    """PNG bytes of a 2-D uint8 array (8-bit greyscale, no filter)."""
    h, w = img.shape
    raw = b"".join(b"\x00" + np.ascontiguousarray(img[r]).tobytes() for r in range(h))
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def _shrink(img, side):
    """Block mean down to at most ``side`` pixels a side (whole blocks; the rest cropped)."""
    step = max(1, int(np.ceil(max(img.shape) / side)))
    h, w = (img.shape[0] // step) * step, (img.shape[1] // step) * step
    return img[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))


def central_slices(vol, side=SIDE):
    """xy, xz and yz central planes of ``vol`` [z, y, x], shrunk and side by side (1 px gap),
    scaled 1-99 percentile of the box to 0-255 (dark stays dense, as in the data)."""
    z, y, x = (s // 2 for s in vol.shape)
    planes = [_shrink(np.asarray(p, np.float32), side) for p in (vol[z], vol[:, y], vol[:, :, x])]
    lo, hi = np.percentile(np.concatenate([p.ravel() for p in planes]), [1, 99])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    h = max(p.shape[0] for p in planes)
    out = np.full((h, sum(p.shape[1] for p in planes) + len(planes) - 1), 255, np.uint8)
    col = 0
    for p in planes:
        out[:p.shape[0], col:col + p.shape[1]] = np.clip((p - lo) * scale, 0, 255).astype(np.uint8)
        col += p.shape[1] + 1
    return out


def data_uri(vol, side=SIDE):
    return "data:image/png;base64," + base64.b64encode(gray_png(central_slices(vol, side))).decode()
