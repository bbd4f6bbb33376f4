"""Give each use of a shared conv/linear its own weight and bias before PT2E quantization.

Why: a module applied twice (CoaT's shared positional-encoding convs, a block re-used) leaves one weight and one
bias in the exported graph for several convs. PT2E quantizes only one of those uses (the other stays float), and
ExecuTorch's XNNPACK serializer quantizes the shared bias once and hands that int32 tensor to every use: the float
use then fails to load (``xnn_status_invalid_parameter``, measured on a two-use depthwise conv), and uses in other
delegates carry bias scales derived from another use's input scale (timm:coat_tiny). Copies cost memory only for
the repeated weights and make every use an ordinary conv with its own quantization.
"""

from __future__ import annotations

import operator

import torch

# ops whose weight and bias arguments PT2E quantizes per use
WEIGHTED_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "linear", "conv_transpose")


def _is_weighted(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and any(op in str(node.target) for op in WEIGHTED_OPS)


def get_attr_value(module: torch.nn.Module, target: str) -> object | None:
    """What a ``get_attr`` node of ``module`` reads (a dotted path such as ``stem.0.bias``), or None."""
    try:
        return operator.attrgetter(str(target))(module)
    except AttributeError:
        return None


def untie_shared_weights(graph_module: torch.fx.GraphModule) -> int:
    """Every get_attr read by more than one conv/linear is copied so that each such op reads its own; returns the
    number of copies made (0: the graph is untouched)."""
    copies = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "get_attr":
            continue
        users = [user for user in node.users if _is_weighted(user)]
        value = get_attr_value(graph_module, str(node.target))
        if len(users) < 2 or not isinstance(value, torch.Tensor):
            continue
        for use, user in enumerate(users[1:], start=1):
            name = f"_untied_{str(node.target).replace('.', '_')}_{use}"
            graph_module.register_parameter(name, torch.nn.Parameter(value.detach().clone(), requires_grad=False))
            with graph_module.graph.inserting_before(user):
                copy = graph_module.graph.get_attr(name)
            copy.meta = dict(node.meta)
            user.replace_input_with(node, copy)
            copies += 1
    if copies:
        graph_module.graph.lint()
        graph_module.recompile()
    return copies
