"""Seeing the graph: pictures, text trees, backward one step at a time, gradient routes.

tb.draw(loss)                        # graphviz.Digraph (value boxes, op ellipses)
tb.viz.render(loss, "out/bn.png")    # the picture, with the DOT source beside it
print(tb.tree(loss))                 # the same graph as text
st = tb.backward_steps(loss)         # a Stepper: next(st), st.run(k), st.goto(k), st.draw()
tb.nodes(loss)["xhat[3,0]"]          # a node by its label (Unicode or ASCII)
print(tb.contributions(x[0][0], loss))   # ∂L/∂x through x̂, μ and σ²
tb.explore(loss).save("bn.html")     # one HTML page: step through backward in a browser
"""

from tinybn.viz.explorer import Explorer, explore
from tinybn.viz.graph import GraphTooLargeError, draw
from tinybn.viz.nodes import GraphNodes, name_parameters, nodes
from tinybn.viz.picture import GraphvizNotFoundError, render
from tinybn.viz.routes import Contributions, Route, contributions
from tinybn.viz.steps import BackwardStep, Push, Stepper, backward_steps
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
    "nodes",
    "GraphNodes",
    "Stepper",
    "BackwardStep",
    "Push",
    "Contributions",
    "Route",
    "GraphTooLargeError",
    "GraphvizNotFoundError",
]
