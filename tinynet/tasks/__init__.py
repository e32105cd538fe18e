"""One small module per task, turning a model's raw outputs into results: classification (top-k labels),
detection (boxes). The graph (tinynet.graph, tinynet.plan) knows nothing of tasks; ``Model.task`` names one."""
