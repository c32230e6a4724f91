"""The forecaster (deck 004: a recurrent net as a dynamical system driven by the series).

At each step t the recurrent stack reads x_t = [z_t, exogenous_t] (the scaled value and any
exogenous columns) into h_t, and a linear head turns h_t into the parameters of the next values'
distribution:

    direct:         h_t -> (z_{t+1}, ..., z_{t+H})    H outputs at once (MQ-RNN)
    autoregressive: h_t -> z_{t+1}                    one step; the forecast feeds its own
                                                      draws back in (DeepAR)

Heads (``head``):
    gaussian:  mu, sigma = softplus(.) + 1e-3                   loss: Gaussian NLL
    student:   mu, sigma, nu = 2 + softplus(.)  (Student-t)     loss: Student-t NLL (heavy tails)
    point:     mu                                              loss: squared error

With ``lags`` > 0 a linear autoregression on the last ``lags`` values is added to the mean
(LSTNet's "highway", Lai et al. 2018): the linear part a small series mostly is, which the
recurrent part then corrects. It reads the same past as the recurrent part, never the future.

With ``relative`` the values of each window are read relative to its first one (its level),
and the forecasts are shifted back: a series with a trend then asks for values the training
windows never held in absolute terms only (a recurrent net cannot extrapolate a level it never
saw; the first value is in every step's past, so no step reads its future).

With ``difference`` (a ``data.series.Differencer``'s mean and standard deviation) the model
reads and forecasts the standardized first differences of the values (ARIMA's d = 1, for a
level with a unit root): ``forecast`` takes the levels, differences them, and integrates the
forecast differences back from each origin's level (an autoregressive model sums each sampled
path, so its interval is the summed paths'; a direct one is trained on the summed differences
at each horizon).

A model reads either the last ``window`` steps before the forecast origin from a zero state
(stateless), or, with ``window=None`` (stateful), the whole history from its first step.
Layout: time-major, x (T, B, F).

With ``members`` K > 1 the model is a deep ensemble (Lakshminarayanan et al. 2017): K forecasters
of the same shape from different random starts, trained side by side on the same batches (the
loss is the mean of theirs). Its forecast is the mixture of theirs with equal weights: the mean is
the mean of the members' means, the interval the central interval of the mixture (pooled sampled
paths, or the mixture's quantiles solved from its distribution function). A small series gives
each random start a different forecast; their mean varies far less from seed to seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, distributions, nn

from ..cells import available
from ..data.series import Differencer
from ..errors import UserError
from ..layers import Recurrent

HEADS = ("gaussian", "student", "point")
MODES = ("direct", "autoregressive")
PARAMS = {"gaussian": 2, "student": 3, "point": 1}


class Forecaster(nn.Module):
    """A recurrent forecaster: ``input_features`` numbers a step in, the distribution of the
    next ``horizon`` values (direct) or the next value (autoregressive) out, at every step.

    ``config`` holds the constructor's arguments, so ``Forecaster(**m.config)`` rebuilds it.

    Example:
        >>> import torch
        >>> m = Forecaster(1, horizon=3, hidden=8, window=10).eval()
        >>> m(torch.randn(10, 4, 1))[0].shape           # (T, B, outputs, parameters)
        torch.Size([10, 4, 3, 2])
        >>> mean, lower, upper = m.forecast(torch.randn(30, 1), [9, 20, 29], 3)
        >>> tuple(mean.shape), bool((lower <= mean).all() and (mean <= upper).all())
        ((3, 3), True)
    """

    def __init__(self, input_features: int = 1, horizon: int = 1, *, mode: str = "direct",
                 head: str = "gaussian", cell: str = "lstm", hidden: int = 64,
                 layers: int = 1, dropout: float = 0.0, window: int | None = 32,
                 lags: int = 0, relative: bool = False, backend: str = "auto",
                 members: int = 1, difference: list[float] | None = None):
        super().__init__()
        _check(input_features, horizon, mode, head, cell, hidden, layers, dropout, window, lags,
               difference)
        if not isinstance(members, int) or members < 1:
            raise UserError(f"--members must be a positive integer, got {members}")
        self.config = {"input_features": input_features, "horizon": horizon, "mode": mode,
                       "head": head, "cell": cell, "hidden": hidden, "layers": layers,
                       "dropout": float(dropout), "window": window, "lags": lags,
                       "relative": relative, "backend": backend, "members": members,
                       "difference": None if difference is None else
                       [float(v) for v in difference]}
        self.mode, self.head_kind, self.window = mode, head, window
        self.outputs = horizon if mode == "direct" else 1
        self.lags, self.relative = lags, relative
        self.differencer = None if difference is None else Differencer(*difference)
        self.members: nn.ModuleList | None = None
        if members > 1:  # a deep ensemble: K forecasters, one each random start
            one = {**self.config, "members": 1}
            self.members = nn.ModuleList(Forecaster(**one) for _ in range(members))
            return
        self.rnn = Recurrent(cell, input_features, hidden, layers, dropout=dropout,
                             backend=backend)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, self.outputs * PARAMS[head])
        if lags:  # y_{t+h} += sum_k a_hk z_{t-k} + b_h: a causal convolution over the values
            self.linear = nn.Conv1d(1, self.outputs, lags)

    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None,
                before: Tensor | None = None):
        """x (T, B, F) -> (parameters (T, B, outputs, P), final state). ``before``: the
        ``lags - 1`` inputs before x (T', B, F), for the linear part (default: zeros). An
        ensemble: parameters (K, T, B, outputs, P) and a list of the K members' states."""
        if self.members is not None:
            states = state if state is not None else [None] * len(self.members)
            out = [m(x, s, lengths, before) for m, s in zip(self.members, states)]
            return torch.stack([p for p, _ in out]), [s for _, s in out]
        h, state = self.rnn(x, state, lengths=lengths)
        p = self.head(self.drop(h))
        p = p.view(*p.shape[:2], self.outputs, -1)
        if self.lags:
            p = p + F.pad(self._linear(x, before).unsqueeze(-1), (0, p.shape[-1] - 1))
        return p, state

    def _linear(self, x: Tensor, before: Tensor | None) -> Tensor:
        """The linear autoregression's (T, B, outputs) on the values of x."""
        values = x[..., :1] if before is None else torch.cat([before[..., :1], x[..., :1]])
        seq = values.permute(1, 2, 0)  # (B, 1, T)
        seq = F.pad(seq, (self.lags - 1 - (values.shape[0] - x.shape[0]), 0))
        return self.linear(seq).permute(2, 0, 1)

    def distribution(self, p: Tensor) -> distributions.Distribution | None:
        """The predicted distribution of parameters ``p`` (..., P); None for a point head."""
        if self.head_kind == "point":
            return None
        scale = F.softplus(p[..., 1]) + 1e-3
        if self.head_kind == "gaussian":
            return distributions.Normal(p[..., 0], scale)
        return distributions.StudentT(2.0 + F.softplus(p[..., 2]), p[..., 0], scale)

    def loss(self, p: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean negative log-likelihood (squared error for a point head) over the unmasked
        targets (an ensemble: the mean of its members' losses)."""
        if self.members is not None:
            return torch.stack([m.loss(q, target, mask) for m, q in zip(self.members, p)]).mean()
        dist = self.distribution(p.float())
        each = (p[..., 0].float() - target) ** 2 if dist is None else -dist.log_prob(target)
        return (each * mask).sum() / mask.sum().clamp(min=1)

    # ---- forecasting -----------------------------------------------------------------------
    @torch.no_grad()
    def forecast(self, x: Tensor, origins: list[int], horizon: int, level: float = 0.9,
                 samples: int = 200, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """From each origin o of the scaled inputs ``x`` (N, F), reading x[:o + 1] only (the
        last ``window`` of it, or all of it when stateful), the mean and the central
        ``level`` interval of z[o+1 .. o+horizon]: three (len(origins), horizon) tensors (a
        point head's interval is the mean itself: see ``train.forecaster`` for its own).
        Autoregressive forecasts draw ``samples`` paths (``seed`` fixes them; an ensemble's
        member k draws its own ``samples`` with seed ``seed + 1000 k``); the mean one step ahead
        is the head's own, not the draws'. An ensemble: the members' mixture (module doc)."""
        was = self.training
        self.eval()
        diff = self.differencer
        try:
            members = [self] if self.members is None else list(self.members)
            z = self.differenced(x)
            out = self._combine([m._predict(z, origins, horizon, samples, seed + 1000 * k)
                                 for k, m in enumerate(members)], level)
            if diff is None:
                return out
            last = x[origins, 0]  # each origin's level, where the summed differences start
            return tuple(diff.integrate(last, t) for t in out)
        finally:
            self.train(was)

    def differenced(self, x: Tensor) -> Tensor:
        """``x`` (N, F) with its values (column 0) replaced by their standardized first
        differences (``data.series.Differencer``); ``x`` itself without ``difference``."""
        if self.differencer is None:
            return x
        d = self.differencer.apply_values(x.detach().cpu().double().numpy())
        return torch.as_tensor(d, dtype=x.dtype, device=x.device)

    def _predict(self, x: Tensor, origins: list[int], horizon: int, samples: int, seed: int
                 ) -> dict[str, Tensor]:
        """One forecaster's predictive distribution from each origin, in the units of ``x``:
        ``params`` (n, horizon, P) (direct), or ``paths`` (n, paths, horizon) drawn and
        ``first`` (n,), the mean one step ahead (autoregressive)."""
        inputs, lengths = self._histories(x, origins, horizon)
        base = inputs[0, :, 0].clone() if self.relative else torch.zeros(len(origins))
        inputs[..., 0] -= base
        x = x.unsqueeze(1).repeat(1, len(origins), 1)
        x[..., 0] -= base  # the values the linear part reads below, on the same base
        p, state = self(inputs, None, lengths)
        last = p[lengths - 1, torch.arange(len(origins))]  # (n, outputs, P)
        # the values before each origin's next step, for an autoregressive linear part
        recent = torch.stack([x[max(0, o + 2 - self.lags):o + 1, i, :1]
                              for i, o in enumerate(origins)], 1) \
            if self.lags > 1 and all(o + 2 >= self.lags for o in origins) else None
        if self.mode == "direct":
            if horizon > self.outputs:
                raise UserError(f"this model forecasts {self.outputs} steps ahead (its "
                                f"--horizon); ask for at most {self.outputs}, or train with "
                                f"--horizon {horizon}")
            params = last[:, :horizon].clone()
            params[..., 0] += base[:, None]  # a location: the scale is the same either way
            return {"params": params}
        z = self._paths(last[:, 0], state, horizon, samples, seed, recent) + base[:, None, None]
        if self.differencer is not None:  # each path's differences summed: its levels
            z = z.cumsum(-1)
        return {"paths": z, "first": last[:, 0, 0] + base}

    def _combine(self, preds: list[dict[str, Tensor]], level: float
                 ) -> tuple[Tensor, Tensor, Tensor]:
        """The mean and central ``level`` interval of the equal-weight mixture of ``preds``
        (one forecaster's: its own distribution)."""
        q = ((1 - level) / 2, (1 + level) / 2)
        if "paths" in preds[0]:
            mean = torch.stack([p["paths"].mean(1) for p in preds]).mean(0)
            mean[:, 0] = torch.stack([p["first"] for p in preds]).mean(0)
            if self.head_kind == "point":
                return mean, mean, mean
            pooled = torch.cat([p["paths"] for p in preds], 1)
            lower, upper = torch.quantile(pooled, torch.tensor(q, dtype=pooled.dtype), dim=1)
            return mean, lower, upper
        params = torch.stack([p["params"] for p in preds])  # (K, n, horizon, P)
        if len(preds) == 1 or self.head_kind == "point":
            mean, lower, upper = self._interval(params[0], level)
            if len(preds) == 1:
                return mean, lower, upper
            mean = params[..., 0].mean(0)
            return mean, mean, mean
        each = [self._interval(p, level) for p in params]
        lows, ups = torch.stack([e[1] for e in each]), torch.stack([e[2] for e in each])
        # the mixture's quantile lies between its members' quantiles: bisect its CDF there
        lower = self._mixture_quantile(params, q[0], lows.min(0).values, lows.max(0).values)
        upper = self._mixture_quantile(params, q[1], ups.min(0).values, ups.max(0).values)
        return params[..., 0].mean(0), lower, upper

    def _mixture_quantile(self, params: Tensor, q: float, lo: Tensor, hi: Tensor) -> Tensor:
        """The ``q`` quantile of the equal-weight mixture of the distributions ``params``
        (K, ...) by bisection on [lo, hi] (float64 inside)."""
        dist = self.distribution(params.double())
        if isinstance(dist, distributions.Normal):
            cdf = dist.cdf
        else:  # torch's Student-t has no CDF: scipy's
            from scipy.stats import t as student

            df, loc, scale = (a.numpy() for a in (dist.df, dist.loc, dist.scale))

            def cdf(v: Tensor) -> Tensor:
                return torch.as_tensor(student.cdf(v.numpy(), df, loc, scale))
        lo, hi = lo.double(), hi.double()
        for _ in range(60):
            mid = (lo + hi) / 2
            below = cdf(mid.unsqueeze(0)).mean(0) < q
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return ((lo + hi) / 2).to(params.dtype)

    def _histories(self, x: Tensor, origins: list[int], horizon: int
                   ) -> tuple[Tensor, Tensor]:
        """The inputs each origin reads, as a padded (T, n, F) batch and their lengths. An
        autoregressive stateless model reads the last ``window - horizon + 1`` steps, so that
        with the values it feeds back it never runs longer than the windows it trained on
        (on sunspots, 5 seeds: RMSE h1 18.0 against 18.9 reading the whole window)."""
        if self.window is None:
            lengths = torch.tensor([o + 1 for o in origins])
            seqs = [x[:o + 1] for o in origins]
        else:
            short = [o for o in origins if o + 1 < self.window]
            if short:
                raise UserError(f"a forecast from step {short[0] + 1} of the history reads the "
                                f"last {self.window} steps (the model's window), but there are "
                                f"only {short[0] + 1}; give a history of at least {self.window}"
                                " steps")
            steps = self.window
            if self.mode == "autoregressive":
                steps = max(2, self.window - horizon + 1)
            lengths = torch.full((len(origins),), steps)
            seqs = [x[o + 1 - steps:o + 1] for o in origins]
        return nn.utils.rnn.pad_sequence(seqs), lengths

    def _interval(self, p: Tensor, level: float) -> tuple[Tensor, Tensor, Tensor]:
        dist = self.distribution(p)
        mean = p[..., 0]
        if dist is None:
            return mean, mean, mean
        q = (1 + level) / 2
        if isinstance(dist, distributions.Normal):
            half = dist.scale * float(distributions.Normal(0.0, 1.0).icdf(torch.tensor(q)))
        else:  # torch's Student-t has no icdf: scipy's
            from scipy.stats import t as student

            half = dist.scale * torch.as_tensor(student.ppf(q, dist.df.double().numpy()),
                                                dtype=dist.scale.dtype)
        return mean, mean - half, mean + half

    def _paths(self, first: Tensor, state, horizon: int, samples: int, seed: int,
               recent: Tensor | None = None) -> Tensor:
        """Autoregressive: draw the next value, feed it back, ``horizon`` times, for
        ``samples`` paths an origin (one path of means for a point head): (n, paths,
        horizon)."""
        n = first.shape[0]
        paths = 1 if self.head_kind == "point" else samples
        state = tuple(s.repeat_interleave(paths, 1) for s in state) \
            if isinstance(state, tuple) else state.repeat_interleave(paths, 1)
        p = first.repeat_interleave(paths, 0)  # (n * paths, P)
        if recent is not None:
            recent = recent.repeat_interleave(paths, 1)
        drawn = []
        with torch.random.fork_rng(devices=[]):  # the draws leave the caller's RNG alone
            torch.manual_seed(seed)
            for h in range(horizon):
                dist = self.distribution(p)
                z = p[..., 0] if dist is None else dist.sample()
                drawn.append(z)
                if h + 1 < horizon:
                    out, state = self(z.view(1, -1, 1), state, before=recent)
                    p = out[0, :, 0]
                    if recent is not None:
                        recent = torch.cat([recent, z.view(1, -1, 1)])[1:]
        return torch.stack(drawn, -1).view(n, paths, horizon)


def _check(input_features, horizon, mode, head, cell, hidden, layers, dropout, window,
           lags, difference) -> None:
    if mode not in MODES:
        raise UserError(f"unknown --mode {mode!r}; choose {' or '.join(MODES)}")
    if head not in HEADS:
        raise UserError(f"unknown --head {head!r}; choose one of {', '.join(HEADS)}")
    if cell not in available():
        raise UserError(f"unknown cell {cell!r}; see rnnkit cells for the list")
    if mode == "autoregressive" and input_features != 1:
        raise UserError("autoregressive forecasts feed their own values back and would need "
                        "the exogenous columns' future values: use --mode direct with --exog")
    for name, v in (("--horizon", horizon), ("--hidden", hidden), ("--layers", layers)):
        if not isinstance(v, int) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v}")
    if not isinstance(lags, int) or lags < 0:
        raise UserError(f"--lags must be a non-negative integer, got {lags}")
    if window is not None and (not isinstance(window, int) or window < 2):
        raise UserError(f"--window must be an integer of at least 2, got {window}")
    if not 0 <= dropout < 1:
        raise UserError(f"--dropout must be in [0, 1), got {dropout}")
    if difference is not None and (len(difference) != 2 or not difference[1] > 0):
        raise UserError(f"difference must be [mean, std] with std > 0, got {difference}")
