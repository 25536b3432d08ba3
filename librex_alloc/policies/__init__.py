"""Policies sharing the batch interface of :class:`~librex_alloc.policies.base.AllocationPolicy`.

Every policy is made by name: ``make_policy("constrained-ts", n_resources=3, oracle="fast")``
or from a :class:`~librex_alloc.config.PolicyConfig`: ``make_policy("constrained-ts",
config=cfg)``. :data:`POLICIES` lists the names, so experiments and sweeps can enumerate them.
Policy-specific hyper-parameters go in ``params`` (each class's ``PARAMS`` lists them with
their defaults): ``make_policy("cucb", n_resources=3, params={"exploration": 1.5})``.

The baselines of SPEC §5, one module per family:

=========================  =======================  ==========================================
name                       module                   rule (reference)
=========================  =======================  ==========================================
constrained-ts             :mod:`.thompson`         samples → same oracle (CTS, Wang & Chen 2018)
oracle                     :mod:`.oracle`           true means → same oracle and fairness rule
cucb                       :mod:`.ucb`              UCB1 indices → same oracle (Chen et al. 2013)
epsilon-greedy             :mod:`.greedy`           posterior means, random rounds w.p. ε
greedy                     :mod:`.greedy`           posterior means, density order (design)
ts-unconstrained           :mod:`.heuristics`       samples ranked, truncated to fit (design)
round-robin                :mod:`.heuristics`       least served first, while it fits (design)
proportional-share         :mod:`.heuristics`       equal fraction of every request (divisible)
bts                        :mod:`.bts`              sample / normalized cost (Xia et al. 2015)
fair-learn                 :mod:`.fair_learn`       deficits beyond α first (Patil et al. 2021)
irs-fh                     :mod:`.irs`              look-ahead sample / cost (Jeong & Min 2024)
drf                        :mod:`.drf`              progressive filling (Ghodsi et al. 2011)
pd-bwk                     :mod:`.pacing`           UCB / Hedge-priced cost (Badanidiyuru 2013)
constrained-ts-pacing      :mod:`.pacing`           samples − dual prices on the pace (BLM 2020)
=========================  =======================  ==========================================

``bts``, ``irs-fh``, ``pd-bwk`` and ``constrained-ts-pacing`` read ``request.pace`` in
horizon-budget mode; every policy keeps within ``request.budget``.

:data:`POLICIES`, :func:`register_policy` and :func:`make_policy` live in
:mod:`librex_alloc.registry`; adding a policy is one module and one ``@register_policy``
(README, "Adding a policy").
"""

from __future__ import annotations

from librex_alloc.policies.base import Allocation, AllocationPolicy
from librex_alloc.policies.bts import BudgetedThompsonSampling
from librex_alloc.policies.drf import DominantResourceFairness
from librex_alloc.policies.fair_learn import FairLearn
from librex_alloc.policies.greedy import EpsilonGreedy, Greedy
from librex_alloc.policies.heuristics import ProportionalShare, RoundRobin, TSUnconstrained
from librex_alloc.policies.irs import IRSFH
from librex_alloc.policies.oracle import OraclePolicy
from librex_alloc.policies.pacing import ConstrainedTSPacing, PrimalDualBwK
from librex_alloc.policies.thompson import ConstrainedThompsonSampling
from librex_alloc.policies.ucb import CUCB
from librex_alloc.registry import POLICIES, make_policy, register_policy

#: The baselines of SPEC §5 (and constrained TS itself), in the order tables list them.
BASELINES: tuple[type[AllocationPolicy], ...] = (
    ConstrainedThompsonSampling, OraclePolicy, CUCB, EpsilonGreedy, TSUnconstrained, Greedy,
    RoundRobin, ProportionalShare, BudgetedThompsonSampling, FairLearn, IRSFH,
    DominantResourceFairness, PrimalDualBwK, ConstrainedTSPacing,
)

for _cls in BASELINES:
    register_policy(_cls)


__all__ = ["Allocation", "AllocationPolicy", "BASELINES", "BudgetedThompsonSampling", "CUCB",
           "ConstrainedTSPacing", "ConstrainedThompsonSampling", "DominantResourceFairness",
           "EpsilonGreedy", "FairLearn", "Greedy", "IRSFH", "OraclePolicy", "POLICIES",
           "PrimalDualBwK", "ProportionalShare", "RoundRobin", "TSUnconstrained", "make_policy",
           "register_policy"]
