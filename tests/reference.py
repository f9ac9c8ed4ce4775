"""A plain per-layer reference of every rule, written straight from the papers' formulas.

NumPy, float64, the papers' column-vector notation (``a_i = W_i h_{i-1} + b_i``), one Python loop
over layers: deliberately nothing shared with the library but the feedback layout, which maps each
layer to the ``B`` it reads (`b_of`).
"""

import numpy as np

ACT = {
    "tanh": (np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
    "relu": (lambda a: np.maximum(a, 0), lambda a: (a > 0).astype(np.float64)),
}


def layers(params):
    """Per-layer ``[(W_i, b_i)]`` in column convention, i = 1 .. depth + 1 (the last is output)."""
    p = [(np.asarray(params.input.w, np.float64).T, np.asarray(params.input.b, np.float64))]
    for w, b in zip(np.asarray(params.hidden.w, np.float64), np.asarray(params.hidden.b, np.float64)):
        p.append((w.T, b))
    p.append((np.asarray(params.output.w, np.float64).T, np.asarray(params.output.b, np.float64)))
    return p


def softmax_xent_error(a_y, labels):
    """The error e = dL/da_y of the batch-mean softmax cross-entropy, per example as columns (out, N)."""
    z = a_y - a_y.max(axis=0)
    p = np.exp(z) / np.exp(z).sum(axis=0)
    onehot = np.eye(a_y.shape[0])[:, labels]
    return (p - onehot) / a_y.shape[1]


def blocks(depth, k):
    """Blocks of hidden layers (1-based indices, each block top first), from the output side."""
    out, top = [], depth
    while top >= 1:
        lo = max(top - k + 1, 1)
        out.append(list(range(top, lo - 1, -1)))
        top = lo - 1
    return out


def b_of(rule, depth, feedback):
    """Maps hidden layer i (1-based) to its feedback matrix in column convention (B_i)."""
    out = np.asarray(feedback.output, np.float64)
    hid = np.asarray(feedback.hidden, np.float64)
    name = rule.name
    if name == "dfa" or (name == "fp" and (rule.bp_depth == 0 or rule.source == "error")):
        return {i: out[i - 1] for i in range(1, depth - getattr(rule, "bp_depth", 0) + 1)}
    if name == "fa":
        m = {i: hid[i - 1] for i in range(1, depth)}
        m[depth] = out[0]
        return m
    if name == "fp":
        return {i: hid[i - 1] for i in range(1, depth - rule.bp_depth + 1)}
    if name == "bdfa":
        k = min(rule.block_size, depth)
        if rule.boundary == "direct":
            m = {i: hid[i - 1] for i in range(1, depth - k + 1)}
            m.update({i: out[i - (depth - k) - 1] for i in range(depth - k + 1, depth + 1)})
            return m
        non_tops = sorted(i for blk in blocks(depth, k) for i in blk[1:])
        return {i: hid[j] for j, i in enumerate(non_tops)}
    return {}


def deltas(rule, params, feedback, x, labels, activation="tanh", use_derivative=True):
    """Returns ``(dW, db)``: lists of per-layer updates (column convention), hidden then output."""
    f, df = ACT[activation]
    p = layers(params)
    depth = len(p) - 1
    h = [np.asarray(x, np.float64).T]
    a = [None]
    for w, b in p[:-1]:
        a.append(w @ h[-1] + b[:, None])
        h.append(f(a[-1]))
    a_y = p[-1][0] @ h[-1] + p[-1][1][:, None]
    e = softmax_xent_error(a_y, np.asarray(labels))
    B = b_of(rule, depth, feedback)
    d = {depth + 1: e}
    fb_deriv = (lambda i: df(a[i])) if use_derivative else (lambda i: 1.0)

    def bp_delta(i):
        return (p[i][0].T @ d[i + 1]) * df(a[i])  # p[i] is W_{i+1} (0-based list)

    name = rule.name
    for i in range(depth, 0, -1):
        if name == "bp":
            d[i] = bp_delta(i)
        elif name == "fa":
            d[i] = (B[i] @ d[i + 1]) * fb_deriv(i)
        elif name == "dfa":
            d[i] = (B[i] @ e) * fb_deriv(i)
        elif name == "fp":
            j = depth - rule.bp_depth + 1  # lowest BP layer
            if i >= j:
                d[i] = bp_delta(i)
            else:
                d[i] = (B[i] @ (e if j > depth or rule.source == "error" else d[j])) * fb_deriv(i)
        elif name == "shallow":
            d[i] = np.zeros_like(a[i])
    if name == "bdfa":
        k = min(rule.block_size, depth)
        above = e  # delta of the lowest layer of the block above
        for blk in blocks(depth, k):
            top = blk[0]
            if rule.boundary == "direct":
                for i in blk:
                    d[i] = (B[i] @ above) * fb_deriv(i)
            else:
                d[top] = bp_delta(top)
                for i in blk[1:]:
                    d[i] = (B[i] @ d[top]) * fb_deriv(i)
            above = d[blk[-1]]
    dw = [d[i] @ h[i - 1].T for i in range(1, depth + 2)]
    db = [d[i].sum(axis=1) for i in range(1, depth + 2)]
    return dw, db


def as_lists(g):
    """A library update (row convention) as the reference's per-layer lists."""
    dw = [np.asarray(g.input.w).T] + [w.T for w in np.asarray(g.hidden.w)] + [np.asarray(g.output.w).T]
    db = [np.asarray(g.input.b)] + list(np.asarray(g.hidden.b)) + [np.asarray(g.output.b)]
    return dw, db
