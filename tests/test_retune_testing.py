"""``retune.testing``: the checks pass on good tasks and name the failure on broken ones."""

from __future__ import annotations

import random

import pytest

from retune.core.task import Call
from retune.plugins import Registry
from retune.tasks import gcd, parity
from retune.tasks.multiplication import MultiplicationTask
from retune.tasks.parity import ParityProblem, ParityTask
from retune.testing import TaskCheckError, check_problem, check_registry, check_task


def test_good_tasks_pass():
    check_task(ParityTask())
    check_task(ParityTask(), lengths=(58, 60), per_length=1, seed=5)
    check_problem(ParityTask(), ParityProblem(bits=[1, 0, 1]))


def test_an_uninstalled_task_is_checked_with_the_tasks_it_calls():
    class Multiplication3(MultiplicationTask):  # not registered: the check supplies it, and addition
        pass

    check_task(Multiplication3(max_multiplier_digits=3), lengths=range(1, 5))


def test_check_registry_runs_every_task_and_refuses_broken_plugins():
    registry = Registry()
    registry.add_plugin(parity, "parity")
    registry.add_plugin(gcd, "gcd")
    check_registry(registry, lengths=range(1, 4), per_length=1)
    registry.add_plugin(object(), "junk")
    registry.plugins["junk"].error = "failed to import 'junk': ImportError: nope"
    with pytest.raises(TaskCheckError, match="broken plugins: junk"):
        check_registry(registry)


class NotShrinking(ParityTask):
    def call(self, problem, returns):
        return None if returns else Call(problem)


class WrongCombine(ParityTask):
    def combine(self, problem, returns):
        return returns[0]


class BadAnswerText(ParityTask):
    def render_answer(self, answer):
        return "odd" if answer else "even"


class LossyProblemText(ParityTask):
    def render_problem(self, problem):
        return super().render_problem(ParityProblem(bits=problem.bits[:3]))


class UsesGlobalRandom(ParityTask):
    def generate(self, length, rng):
        return ParityProblem(bits=[random.randint(0, 1) for _ in range(length)])


class WrongLength(ParityTask):
    def generate(self, length, rng):
        return ParityProblem(bits=[rng.randint(0, 1) for _ in range(length + 1)])


class BadScratchpad(ParityTask):
    def scratchpad_output(self, problem):
        return "I think it is even"


class WrongTailFlag(ParityTask):
    def is_tail_call(self, problem, index):
        return True


class UndeclaredCallee(ParityTask):
    def call(self, problem, returns):
        return None if returns else Call(ParityProblem(bits=problem.bits[1:]), task="gcd")


@pytest.mark.parametrize("task, message", [
    (NotShrinking(), "not smaller"),
    (WrongCombine(), "the recursion answers"),
    (BadAnswerText(), "parse_answer('even') raised"),
    (LossyProblemText(), "parse_problem(render_problem(p)) != p"),
    (UsesGlobalRandom(), "generate is not deterministic"),
    (WrongLength(), "gave a problem of length"),
    (BadScratchpad(), "scratchpad output does not parse"),
    (WrongTailFlag(), "the oracle-driven solver answered"),
    (UndeclaredCallee(), "not in its callees"),
])
def test_broken_tasks_fail_with_a_message_naming_the_problem(task, message):
    with pytest.raises(TaskCheckError, match="task 'parity'") as error:
        check_task(task, lengths=range(1, 6))
    assert message in str(error.value)


def test_not_a_task():
    with pytest.raises(TaskCheckError, match="not an instance"):
        check_task(object())
