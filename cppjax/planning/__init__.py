"""Evaluation planning: which evaluations to run next, what they cost, how sure we will be after.

A *target* says what we want to know: the scores of some cells (:func:`scores`), a model's rank
on tasks (:func:`rank`) or on the leaderboard aggregate (:func:`aggregate`), the order of the
leaderboard's top k (:func:`top`), the best model on a task (:func:`best`), or whether one model
beats another (:func:`beats`). Its *uncertainty* is
the variance of the scores (in :func:`cppjax.posterior.ranks.task_units`: shares of each task's
observed
range) or of the ranks, or the entropy (bits) of the best model's identity or of the
comparison. The *value* of evaluating a cell is the expected drop of that uncertainty once the
cell's score is known.

How values are computed (``docs/decisions/0010-planning-by-pathwise-updates.md``): from ``S``
joint predictive draws of every cell involved, observing cell ``c`` at value ``y`` moves each
draw ``x_s`` to ``x_s - k (y_s - y)``, ``k = Cov(x, y_c) / Var(y_c)`` (Matheron's rule: exact
for a Gaussian predictive, a linear update otherwise); the uncertainty after is averaged over
``n_scenarios`` outcomes drawn jointly from the predictive, so that non-linear targets (ranks,
the best model) see where the scores may land. A plan is greedy: each pick maximises value per
cost given the picks before it (conditioned on in every scenario), until the budget is spent.
Everything after the posterior's draws runs in one compiled program per target shape.

Example (a fit takes seconds, so the lines are not run as a doctest)::

    import cppjax
    from cppjax import planning
    post = cppjax.fit("pmf_svi", train, rng_key=0)
    p = planning.plan(post, planning.aggregate("LLaMA-2-7B"), budget=5, rng_key=1)
    p.to_frame()                  # the picks, cost spent, expected uncertainty after each
    train2 = train.add_scores(p.template().assign(score=[...]))   # the measured scores
    post2 = post.refit(train2, rng_key=2)     # the compiled programs are reused
"""

from cppjax.data.costs import cost_matrix, read_costs
from cppjax.planning.planner import MIN_DRAWS, Plan, Planner, Scenarios, plan, values
from cppjax.planning.targets import (
    AggregateTarget,
    BeatsTarget,
    BestTarget,
    RankTarget,
    ScoresTarget,
    Target,
    TopTarget,
    aggregate,
    beats,
    best,
    rank,
    scores,
    top,
)

__all__ = ["MIN_DRAWS", "AggregateTarget", "BeatsTarget", "BestTarget", "Plan", "Planner",
           "RankTarget", "Scenarios", "ScoresTarget", "Target", "TopTarget", "aggregate",
           "beats", "best", "cost_matrix", "plan", "rank", "read_costs", "scores", "top",
           "values"]
