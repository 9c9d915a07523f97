"""Task detectors on synthetic state sequences: legacy vs strict metrics, counts, summaries."""

from __future__ import annotations

import math

import pytest
from skills_helpers import make_view

from maestromotif.skills import rules
from maestromotif.tasks import TASK_NAMES, TASKS, TaskTracker, get_task, summarize
from maestromotif.tasks.detect import ACTION_DROP, ACTION_UP, TaskOutcome, offered_group


def run(task: str, views, **kw) -> TaskTracker:
    t = TaskTracker(task, **kw)
    t.reset(views[0])
    for v in views[1:]:
        t.update(v)
    return t


def test_nine_tasks_with_prompts_and_paper_numbers() -> None:
    assert TASK_NAMES == ("gnomish", "delphi", "minetown", "transactions", "price", "buc", "goldenexit",
                          "levelupsell", "discoveryhunger")
    assert TASKS["gnomish"].paper.maestromotif == "46% ± 1.70"
    assert TASKS["gnomish"].base_turns == 50 and TASKS["delphi"].max_depth == 10
    assert all(not s.ends_on_success for s in TASKS.values() if s.metric == "count")  # D1
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        get_task("nope")


def test_gnomish_fires_on_dungeon_number_two_even_after_a_fall() -> None:
    t = run("gnomish", [make_view(), make_view(depth=3, step=5), make_view(depth=4, dungeon=2, step=6)])
    assert t.outcome.legacy_success and t.outcome.strict_success and t.done


def test_delphi_legacy_proxy_and_strict_oracle() -> None:
    t = run("delphi", [make_view(), make_view(depth=7, dungeon=2)])
    assert t.outcome.legacy_success and not t.outcome.strict_success  # depth 7 in the Mines: proxy only
    assert not t.done and TaskTracker("delphi", end_on="legacy").spec.name == "delphi"
    oracle = {(11, 39): rules.GLYPH_CENTAUR_STATUES[0]}
    t = run("delphi", [make_view(), make_view(depth=6, glyphs=oracle)])
    assert t.outcome.strict_success and not t.outcome.legacy_success
    assert run("delphi", [make_view(), make_view(depth=6, glyphs=oracle)], end_on="strict").done


def test_minetown_legacy_span_and_strict_features() -> None:
    mines = [make_view(depth=d, dungeon=2) for d in (3, 4, 5)]
    t = run("minetown", [make_view(), *mines])
    assert t.outcome.legacy_success and not t.outcome.strict_success
    t = run("minetown", [make_view(), *[make_view(depth=d, dungeon=2) for d in (5, 6, 7)]])
    assert not t.outcome.legacy_success  # the original's (5,7) gap is reproduced in legacy
    t = run("minetown", [make_view(), make_view(depth=7, dungeon=2, glyphs={(3, 3): rules.GLYPH_FOUNTAIN})])
    assert t.outcome.strict_success
    t = run("minetown", [make_view(), make_view(depth=3, glyphs={(3, 3): rules.GLYPH_FOUNTAIN})])
    assert not t.outcome.strict_success  # a fountain in the main dungeon is not Minetown


def test_transactions_counts_every_sale_and_never_ends() -> None:
    shop = {(3, 3): rules.GLYPH_SHOPKEEPER}
    views = [make_view(), make_view(depth=2, glyphs=shop), make_view(depth=3, message=b"You sold a ring for 50 gold pieces."),
             make_view(depth=3, message=b"Unsold goods."), make_view(depth=3, message=b"You sold a wand for 100 gold pieces.")]
    t = run("transactions", views)
    assert (t.outcome.legacy_count, t.outcome.strict_count) == (3, 2)  # legacy also counts "Unsold"
    assert t.outcome.precondition_seen and not t.done


def test_price_counts_sales_after_an_offer_at_half_a_base_price() -> None:
    offer = b"Asidonhopo offers 50 gold pieces for your scroll labeled ZELGO MER.  Sell it? [ynaq] (y)"
    odd = b"Asidonhopo offers 7 gold pieces for your scroll labeled FOO.  Sell it? [ynaq] (y)"
    ring_offer = b"Asidonhopo offers 40 gold pieces for your opera cloak.  Sell it? [ynaq] (y)"
    sold = b"You sold a scroll for 50 gold pieces."
    views = [make_view(), make_view(message=offer), make_view(message=sold, last_action=8),
             make_view(message=odd), make_view(message=sold),
             make_view(message=ring_offer), make_view(message=sold),
             make_view(message=sold)]  # a sale with no offer right before it
    t = run("price", views)
    # 100 is a scroll price (both); 14 no; 80: a potion... price (legacy) but not a cloak's (strict)
    assert (t.outcome.legacy_count, t.outcome.strict_count) == (2, 1)
    assert offered_group(b"your crude ring mail") is None and offered_group(b"your ruby ring") == "ring"


def test_buc_counts_drops_on_an_altar_of_unknown_items() -> None:
    views = [
        make_view(),
        make_view(last_action=ACTION_DROP, message=b"There is a black flash as the ring hits the altar."),
        make_view(last_action=ACTION_DROP, message=b"A wand lands on the altar."),
        make_view(last_action=ACTION_DROP, message=b"An uncursed wand lands on the altar."),  # already known
        make_view(last_action=ACTION_DROP, message=b"You drop a ring."),  # not on an altar
        make_view(last_action=ACTION_UP, message=b"There is an altar here."),  # not a drop
        make_view(last_action=ACTION_DROP, message=b"Something about an altar."),  # legacy counts it
    ]
    t = run("buc", views)
    assert (t.outcome.legacy_count, t.outcome.strict_count) == (3, 2)


def test_goldenexit_legacy_and_strict() -> None:
    kill = b"You kill the newt!"
    views = [make_view()]
    views += [make_view(depth=3, dungeon=2, message=kill, gold=25) for _ in range(25)]  # Mines depth 3: legacy only
    views += [make_view(depth=1, gold=25, last_action=ACTION_UP, message=b"Beware, there will be no return!  Still climb? [yn] (n)")]
    t = run("goldenexit", views)
    assert t.outcome.legacy_success and not t.outcome.strict_success
    views = [make_view()] + [make_view(depth=d, message=kill, gold=25) for d in (1, 2, 3) for _ in range(9)]
    views += [make_view(depth=1, gold=25, last_action=ACTION_UP, message=b"Beware, there will be no return!  Still climb? [yn] (n)")]
    t = run("goldenexit", views)
    assert t.outcome.legacy_success and t.outcome.strict_success and t.done
    bee = [make_view()] + [make_view(depth=3, message=b"The killer bee stings!", gold=25) for _ in range(30)]
    bee += [make_view(depth=1, gold=25, last_action=ACTION_UP, message=b"Still climb?")]
    t = run("goldenexit", bee)
    assert t.outcome.legacy_success and not t.outcome.strict_prereq  # "killer bee" is not a kill (D4)


def test_levelupsell_survival_after_the_sale() -> None:
    views = [make_view(), make_view(xp=4, step=1), make_view(depth=2, xp=4, step=2, message=b"You sold a ring for 50 gold pieces.")]
    views += [make_view(depth=2, xp=4, step=s) for s in range(3, 303)]
    t = run("levelupsell", views)
    assert t.outcome.legacy_prereq and t.outcome.strict_prereq and not t.outcome.legacy_success
    t.update(make_view(depth=2, xp=4, step=303))
    assert t.outcome.legacy_success and t.outcome.strict_success
    # XP 4 reached only after leaving depth 1: legacy only
    views = [make_view(), make_view(depth=2, xp=4, step=1), make_view(depth=1, xp=4, step=2, message=b"You sold a ring.")]
    views += [make_view(xp=4, step=s) for s in range(3, 305)]
    t = run("levelupsell", views)
    assert t.outcome.legacy_success and not t.outcome.strict_prereq


def test_discoveryhunger_needs_eating_in_the_mines_first() -> None:
    t = run("discoveryhunger", [make_view(), make_view(depth=7), make_view(depth=4, dungeon=2, just_eaten=True)])
    assert t.outcome.legacy_prereq and not t.outcome.legacy_success  # depth 7 before eating does not count
    oracle = {(11, 39): rules.GLYPH_ORACLE}
    views = [make_view(), make_view(depth=4, dungeon=2, hunger=2), make_view(depth=4, dungeon=2, just_eaten=True, hunger=1),
             make_view(depth=7, glyphs=oracle)]
    t = run("discoveryhunger", views)
    assert t.outcome.legacy_success and t.outcome.strict_success
    views[1] = make_view(depth=4, dungeon=2, hunger=1)  # not hungry when it ate
    t = run("discoveryhunger", views)
    assert t.outcome.legacy_success and not t.outcome.strict_success


def test_summarize_fixed_set_with_conditional_counts() -> None:
    outs = [TaskOutcome("transactions", legacy_count=c, strict_count=c, precondition_seen=c > 0) for c in (0, 0, 2, 4)]
    s = summarize(outs)
    assert s["legacy"].mean == 1.5 and s["legacy"].n == 4
    assert s["legacy_conditional"].mean == 3.0 and s["legacy_conditional"].n == 2
    assert math.isclose(s["strict_conditional"].stderr, 1.0)
    s = summarize([TaskOutcome("gnomish", legacy_success=b, strict_success=b) for b in (True, False, False, False)])
    assert s["legacy"].mean == 0.25 and s["strict"].n == 4
    with pytest.raises(ValueError, match="one task"):
        summarize([TaskOutcome("gnomish"), TaskOutcome("delphi")])
