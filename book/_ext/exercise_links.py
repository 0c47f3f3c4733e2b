"""Each exercise ends with a link to its worked solution, added when the book is built.

An exercise (sphinx-exercise's ``{exercise}``, labelled ``chN-ex-K``) is answered by the
``{solution} chN-ex-K`` on one of the chapter's solutions pages. Once every page has
been read, sphinx-exercise's registry knows both, so this post-transform appends
"Worked solution" to the exercise, as a reference Sphinx resolves like a written
``{ref}``: the chapters carry no generated link to keep in step, and a solution that
moves to another page is found where it is. ``book/notebooks.py check`` still reports
an exercise that has no solution.
"""

from __future__ import annotations

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx_exercise.nodes import is_exercise_enumerable_node, is_exercise_node

TEXT = "Worked solution"


def solutions_by_exercise(registry: dict) -> dict[str, str]:
    """The registry's solutions: the exercise's label -> the solution's label."""
    return {
        entry["node"]["target_label"]: label
        for label, entry in registry.items()
        if entry["type"] in ("solution", "solution-start")
    }


class LinkExercisesToSolutions(SphinxPostTransform):
    # Before Sphinx resolves references (priority 10), so the link is resolved like any.
    default_priority = 6

    def run(self):
        registry = getattr(self.env, "sphinx_exercise_registry", {})
        answers = solutions_by_exercise(registry)
        for node in self.document.findall(
            lambda n: is_exercise_node(n) or is_exercise_enumerable_node(n)
        ):
            solution = answers.get(node.get("label", ""))
            if solution is None:
                continue
            link = addnodes.pending_xref(
                "",
                nodes.inline("", TEXT, classes=["std", "std-ref"]),
                refdomain="std",
                reftype="ref",
                reftarget=solution,
                refexplicit=True,
                refwarn=True,
                refdoc=self.env.docname,
            )
            paragraph = nodes.paragraph(
                "", "", link, classes=["exercise-solution-link"]
            )
            body = (
                node.children[-1]
                if isinstance(node.children[-1], nodes.section)
                else node
            )
            body += paragraph


def setup(app: Sphinx) -> dict:
    app.add_post_transform(LinkExercisesToSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
