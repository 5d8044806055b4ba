"""A hand-made win/tie/loss row, as the evaluation writes one per category."""


def win_row(n: int, win: int, loss: int) -> dict:
    return {
        "n": n,
        "win": win / n,
        "tie": (n - win - loss) / n,
        "loss": loss / n,
        "win_minus_loss": 100 * (win - loss) / n,
        "ci95": [0.0, 0.0],
    }
