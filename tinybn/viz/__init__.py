"""Seeing the graph: pictures, text trees, backward one step at a time, gradient routes.

tb.draw(loss)                        # graphviz.Digraph (value boxes, op ellipses)
tb.viz.render(loss, "out/bn.png")    # the picture, with the DOT source beside it
print(tb.tree(loss))                 # the same graph as text
for step in tb.backward_steps(loss): print(step)
print(tb.contributions(x[0][0], loss))   # ∂L/∂x through x̂, μ and σ²
tb.explore(loss).save("bn.html")     # one HTML page: step through backward in a browser
"""

from tinybn.viz.explorer import Explorer, explore
from tinybn.viz.graph import GraphTooLargeError, draw
from tinybn.viz.nodes import name_parameters
from tinybn.viz.picture import GraphvizNotFoundError, render
from tinybn.viz.routes import Contributions, Route, contributions
from tinybn.viz.steps import BackwardStep, Push, backward_steps
from tinybn.viz.text import tree

__all__ = [
    "draw",
    "render",
    "tree",
    "backward_steps",
    "contributions",
    "explore",
    "Explorer",
    "name_parameters",
    "BackwardStep",
    "Push",
    "Contributions",
    "Route",
    "GraphTooLargeError",
    "GraphvizNotFoundError",
]
