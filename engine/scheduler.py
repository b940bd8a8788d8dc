"""Pure policy: what each sequence contributes to the next llama_decode."""

from __future__ import annotations

from dataclasses import dataclass, field

from .sequence import Sequence, SeqState


@dataclass(slots=True)
class StepPlan:
    decode: list[Sequence] = field(default_factory=list)  # one token each
    prefill: list[tuple[Sequence, int]] = field(default_factory=list)  # (sequence, prompt tokens)

    @property
    def n_tokens(self) -> int:
        return len(self.decode) + sum(n for _, n in self.prefill)

    def __bool__(self) -> bool:
        return bool(self.decode or self.prefill)


def schedule(running: list[Sequence], budget: int) -> StepPlan:
    """Every decoding sequence gets its next token first, so streams never stall behind a long
    prompt; what is left of the token budget prefills waiting prompts in arrival order, in chunks."""
    plan = StepPlan()
    for seq in running:
        if seq.state is SeqState.DECODE and len(plan.decode) < budget:
            plan.decode.append(seq)
    left = budget - len(plan.decode)
    for seq in running:
        if left <= 0:
            break
        if seq.state is SeqState.PREFILL:
            n = min(seq.prompt_left, left)
            plan.prefill.append((seq, n))
            left -= n
    return plan
