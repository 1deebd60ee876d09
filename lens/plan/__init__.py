from lens.plan.model import (
    ArrivalSchedule,
    Message,
    Plan,
    PromptSpec,
    ProviderSpec,
    Secret,
    SimSettings,
    SlaSpec,
    StagePlan,
)

__all__ = [
    "ArrivalSchedule",
    "Message",
    "Plan",
    "PromptSpec",
    "ProviderSpec",
    "Secret",
    "SimSettings",
    "SlaSpec",
    "StagePlan",
]
