"""Plain PyTorch reference of one HGAD level (docs: shared HGAD.md, docs/FORMAT.md).

Written the way a PyTorch user would: eager nn.Modules and autograd. Parameter names of the
modules equal the tensor names of the hgad model file without the `levels.<l>.` prefix, so a file
level loads with `load_state_dict`.
"""
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)
LABEL_SMOOTHING = 0.02
# gamma for which g = 0.2 * ln(1 + exp(0.5 * gamma)) == 1
GAMMA_UNIT = 2 * math.log(math.expm1(5.0))


def positional_encoding_2d(P, H, W, dtype=torch.float32, device=None):
    """[H*W, P], rows in (y, x) row-major order; CFlow's positionalencoding2d, transposed."""
    assert P % 4 == 0
    half = P // 2
    freq = torch.exp(torch.arange(0, half, 2, dtype=dtype, device=device) * (-math.log(1e4) / half))
    xs = torch.arange(W, dtype=dtype, device=device)[:, None] * freq  # [W, P/4]
    ys = torch.arange(H, dtype=dtype, device=device)[:, None] * freq  # [H, P/4]
    # interleave sin/cos: entry 2i = sin, 2i+1 = cos
    ex = torch.stack([xs.sin(), xs.cos()], dim=-1).reshape(W, half)
    ey = torch.stack([ys.sin(), ys.cos()], dim=-1).reshape(H, half)
    return torch.cat([ex[None, :, :].expand(H, W, half), ey[:, None, :].expand(H, W, half)],
                     dim=-1).reshape(H * W, P)


def _sqdist(z, c):
    """||z_i - c_j||^2 for z [N, C], c [K, C] through one GEMM (HGAD.md section 3)."""
    return (z * z).sum(1, keepdim=True) - 2 * z @ c.T + (c * c).sum(1)


def _random_rotation(C, dtype, device, generator=None):
    # Haar-distributed orthogonal matrix (QR of a Gaussian with sign fix), then det forced to +1.
    a = torch.randn(C, C, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype=dtype, device=device)


class CouplingBlock(nn.Module):
    """Affine coupling conditioned on p, then a per-channel affine and a fixed rotation."""

    def __init__(self, C, P, clamp=1.9, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.C, self.P, self.clamp = C, P, clamp
        self.C1, self.C2 = (C + 1) // 2, C // 2
        n = self.C1 + P
        # raw Parameters (not nn.Linear) so that names match the file: blocks.k.w1 ...
        self.w1 = nn.Parameter(torch.empty(2 * n, n, **kw))
        self.b1 = nn.Parameter(torch.empty(2 * n, **kw))
        self.w2 = nn.Parameter(torch.empty(2 * self.C2, 2 * n, **kw))
        self.b2 = nn.Parameter(torch.empty(2 * self.C2, **kw))
        self.gamma = nn.Parameter(torch.empty(C, **kw))
        self.offset = nn.Parameter(torch.empty(C, **kw))
        self.register_buffer("rotation", torch.empty(C, C, **kw))

    def _scale_shift(self, v1, p):
        h = F.relu(F.linear(torch.cat([v1, p], dim=1), self.w1, self.b1))
        a = 0.1 * F.linear(h, self.w2, self.b2)
        a_s, a_t = a[:, :self.C2], a[:, self.C2:]
        return self.clamp * torch.tanh(a_s / self.clamp), a_t

    def _g(self):
        return 0.1 * F.softplus(self.gamma, beta=0.5)

    def forward(self, v, p):
        v1, v2 = v[:, :self.C1], v[:, self.C1:]
        s, t = self._scale_shift(v1, p)
        u = torch.cat([v1, v2 * torch.exp(s) + t], dim=1)
        g = self._g()
        w = (u * g + self.offset) @ self.rotation.T
        return w, s.sum(1) + torch.log(g).sum()

    def inverse(self, w, p):
        u = (w @ self.rotation - self.offset) / self._g()  # R is orthogonal: R^-1 = R^T
        v1, v2p = u[:, :self.C1], u[:, self.C1:]
        s, t = self._scale_shift(v1, p)
        return torch.cat([v1, (v2p - t) * torch.exp(-s)], dim=1)


class HgadLevel(nn.Module):
    """The flow and hierarchical Gaussian mixture prior of one feature level."""

    def __init__(self, C, P, K=12, Y=15, M=10, clamp=1.9, device=None, dtype=None, generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.C, self.P, self.Y, self.M = C, P, Y, M
        self.blocks = nn.ModuleList(CouplingBlock(C, P, clamp, **kw) for _ in range(K))
        self.mu = nn.Parameter(torch.empty(Y, C, **kw))
        self.delta = nn.Parameter(torch.empty(Y, M - 1, C, **kw))
        self.phi = nn.Parameter(torch.empty(Y, **kw))
        self.psi = nn.Parameter(torch.empty(Y, M, **kw))
        default_init(self, generator)

    @classmethod
    def from_tensors(cls, config, tensors, level):
        C = int(config["levels"][level]["channels"])
        classes = config["classes"]
        Y = classes if isinstance(classes, int) else len(classes)
        m = cls(C, int(config["posEmbedDim"]), int(config["couplingLayers"]), Y,
                int(config["centersPerClass"]), float(config["clamp"]))
        prefix = f"levels.{level}."
        m.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        return m

    def flow(self, x, p):
        logdet = x.new_zeros(x.shape[0])
        for block in self.blocks:
            x, ld = block(x, p)
            logdet = logdet + ld
        return x, logdet

    def flow_inverse(self, z, p):
        for block in reversed(self.blocks):
            z = block.inverse(z, p)
        return z

    def _centres(self, detach_mu=False):
        """[Y, M, C]: c_{y,0} = mu_y, c_{y,m} = mu_y + delta_{y,m-1}."""
        mu = (self.mu.detach() if detach_mu else self.mu)[:, None, :]
        return torch.cat([mu, mu + self.delta], dim=1)

    def _intra_logits(self, z, labels, detach_mu=False):
        """-d_{y*,m}/2 + log pi_{y*,m}: [N, M] under each vector's class y*."""
        d = _sqdist(z, self._centres(detach_mu).reshape(-1, self.C)).view(-1, self.Y, self.M)
        d = d[torch.arange(z.shape[0], device=z.device), labels]
        return -0.5 * d + F.log_softmax(self.psi, dim=1)[labels]

    def losses(self, z, logdet, labels):
        C, Y = self.C, self.Y
        half_d = -0.5 * _sqdist(z, self.mu)  # -d_y/2, [N, Y]
        log_pi = F.log_softmax(self.phi, dim=0)
        Lg = (-torch.logsumexp(half_d + log_pi, dim=1) - logdet) / C
        t = F.one_hot(labels, Y).to(z.dtype) * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / Y
        sg_log_pi = log_pi.detach()
        Lmi = (t * (F.log_softmax(half_d + sg_log_pi, dim=1) - sg_log_pi)).sum(1)
        Le = -(F.softmax(half_d, dim=1) * F.log_softmax(half_d, dim=1)).sum(1)
        Lgi = (-torch.logsumexp(self._intra_logits(z, labels, detach_mu=True), dim=1) - logdet) / C
        logp = -0.5 * C * LOG_2PI + torch.logsumexp(self._intra_logits(z, labels), dim=1) + logdet
        Lz = F.softplus(-logp / C)  # == -log sigmoid(logp / C)
        return {"Lg": Lg.mean(), "Lmi": Lmi.mean(), "Le": Le.mean(), "Lgi": Lgi.mean(), "Lz": Lz.mean()}

    def score(self, z, logdet, labels):
        """Per vector: logp / C, negative entropy, class logits (HGAD.md section 6)."""
        logp = (-0.5 * self.C * LOG_2PI + torch.logsumexp(self._intra_logits(z, labels), dim=1)
                + logdet) / self.C
        half_d = -0.5 * _sqdist(z, self.mu)
        neg_entropy = (F.softmax(half_d, dim=1) * F.log_softmax(half_d, dim=1)).sum(1)
        class_logits = half_d + F.log_softmax(self.phi, dim=0)
        return logp, neg_entropy, class_logits

    def param_groups(self, lr=2e-4, weight_decay=1e-4):
        """Adam groups of the authors' defaults (HGAD.md section 5)."""
        return [{"params": list(self.blocks.parameters()), "lr": lr, "weight_decay": weight_decay},
                {"params": [self.mu, self.delta], "lr": 3 * lr, "weight_decay": 0.0},
                {"params": [self.phi, self.psi], "lr": lr, "weight_decay": 0.0}]


@torch.no_grad()
def default_init(level, generator=None):
    """HGAD.md initialisation; generator (CPU) makes it reproducible."""
    for b in level.blocks:
        # what nn.Linear.reset_parameters does
        for w, bias in ((b.w1, b.b1), (b.w2, b.b2)):
            bound = 1 / math.sqrt(w.shape[1])
            # kaiming_uniform_(a=sqrt(5)) on [out, in] is U(-1/sqrt(in), 1/sqrt(in))
            w.copy_(torch.empty(w.shape, dtype=torch.float64).uniform_(-bound, bound, generator=generator))
            bias.copy_(torch.empty(bias.shape, dtype=torch.float64).uniform_(-bound, bound, generator=generator))
        b.gamma.fill_(GAMMA_UNIT)
        b.offset.zero_()
        b.rotation.copy_(_random_rotation(b.C, b.rotation.dtype, b.rotation.device, generator))
    C, Y = level.C, level.Y
    s0 = 5 / math.sqrt(2 * C // Y)
    level.mu.zero_()
    eye = torch.eye(Y, dtype=level.mu.dtype, device=level.mu.device)
    for k in range(C // Y):
        level.mu[:, k * Y:(k + 1) * Y] = s0 * eye
    level.delta.copy_(torch.randn(level.delta.shape, dtype=torch.float64, generator=generator))
    level.phi.zero_()
    level.psi.zero_()


# ---- safetensors container (the safetensors package is not assumed to be installed) ----
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
           "U8": torch.uint8, "BOOL": torch.bool}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """-> (dict name -> tensor, metadata dict). Assumes a little-endian host, like torch.frombuffer."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        if end > start:
            t = torch.frombuffer(bytearray(data[start:end]), dtype=dtype)
        else:
            t = torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"])
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        raw = t.detach().cpu().contiguous().numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # safetensors pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)


def load_hgad_file(path):
    """-> (config dict, dict name -> tensor) of an hgad model file (docs/FORMAT.md)."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != "hgad":
        raise ValueError(f"{path}: not an hgad model file")
    return json.loads(metadata["config"]), tensors
