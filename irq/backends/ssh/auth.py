"""Logging in: public keys in OpenSSH's order, then keyboard-interactive through a prompt callback."""
from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

import paramiko

from irq import errors
from irq.backends.ssh.endpoint import Endpoint
from irq.config import ClusterConfig

# prompt(title, instructions, [(prompt text, echo), ...]) -> [answer, ...]: asks a person for a
# password, one-time code or key passphrase (paramiko's keyboard-interactive handler shape).
Prompt = Callable[[str, str, list[tuple[str, bool]]], list[str]]


DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


INTERACTIVE_AUTH_TIMEOUT = 300.0  # a person typing a one-time code


def default_prompt() -> Prompt | None:
    """Ask at the terminal, or None when no one is there (a daemon, a pipe)."""
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        interactive = False
    if not interactive:
        return None

    def ask(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        header = "\n".join(s for s in (title, instructions) if s and s.strip())
        if header:
            sys.stderr.write(header + "\n")
        answers = []
        for text, echo in prompts:
            if echo:
                sys.stderr.write(text)
                sys.stderr.flush()
                answers.append(sys.stdin.readline().rstrip("\n"))
            else:
                answers.append(getpass.getpass(text))
        return answers

    return ask


def _ask_one(ask: Prompt, text: str) -> str:
    answers = list(ask("", "", [(text, False)]) or [])
    return answers[0] if answers else ""


def identity_keys(ep: Endpoint, prompt: Prompt | None):
    """(key, label) candidates in OpenSSH's order: identity files, agent, default keys."""
    seen: set[bytes] = set()
    files = list(ep.identity_files)
    agent_keys: list[paramiko.PKey] = []
    if not ep.identities_only or not files:
        try:
            agent_keys = list(paramiko.Agent().get_keys())
        except Exception:  # no agent, or it does not answer
            agent_keys = []
    if not files:
        files = [str(Path.home() / ".ssh" / n) for n in DEFAULT_KEYS]
    explicit = set(ep.identity_files)
    for f in files:
        key = load_key(f, f in explicit, prompt)
        if key is not None and key.asbytes() not in seen:
            seen.add(key.asbytes())
            yield key
    for k in agent_keys:
        if k.asbytes() not in seen:
            seen.add(k.asbytes())
            yield k


def load_key(path: str, required: bool, prompt: Prompt | None) -> paramiko.PKey | None:
    if not os.path.isfile(path):
        if required:
            raise errors.AuthError(f"identity file {path} does not exist",
                                   "fix identity_file in irq.toml or IdentityFile in your ssh config")
        return None
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        ask = prompt or default_prompt()
        if ask is None:
            return None  # an agent may hold it
        try:
            return paramiko.PKey.from_path(path, _ask_one(ask, f"Passphrase for key {path}: "))
        except paramiko.SSHException:
            raise errors.AuthError(f"wrong passphrase for {path}", "try again, or load the key with ssh-add") from None
    except (paramiko.SSHException, OSError, ValueError) as exc:
        if required:
            raise errors.AuthError(f"cannot read identity file {path}: {exc}",
                                   "is it a private key OpenSSH can use?") from None
        return None

def authenticate(t: paramiko.Transport, ep: Endpoint, cfg: ClusterConfig, prompt: Prompt | None) -> None:
    """Keys first; then, if the server asks for more and allows it, keyboard-interactive."""
    user = ep.user
    allowed, tried = _try_keys(t, ep, prompt)
    if t.is_authenticated():
        return
    can_interact = cfg.allow_keyboard_interactive and (
        "keyboard-interactive" in allowed or "password" in allowed)
    if not can_interact:
        raise errors.AuthError(
            f"{user}@{ep.where} refused the login: no key was accepted ({tried} tried); "
            f"the server allows {', '.join(allowed) or 'nothing else'}",
            "check the user and key for this cluster (irq.toml user/identity_file, or User/IdentityFile "
            "in ~/.ssh/config) and that the public key is in the cluster's ~/.ssh/authorized_keys",
        )
    ask = prompt or default_prompt()
    if ask is None:
        raise errors.AuthError(
            f"logging in to {user}@{ep.where} needs a person: the server asks for a password or "
            f"one-time code and no one is at a terminal to answer",
            "run the irq command in a terminal (it asks for the code), or use a key the cluster "
            "accepts on its own; a daemon cannot answer two-factor prompts",
        )
    t.auth_timeout = INTERACTIVE_AUTH_TIMEOUT
    try:
        _interact(t, ep, ask, allowed)
    finally:
        t.auth_timeout = cfg.connect_timeout
    if not t.is_authenticated():
        raise errors.AuthError(f"{user}@{ep.where} rejected the password or one-time code",
                               "try again (one-time codes expire quickly)")


def _try_keys(t: paramiko.Transport, ep: Endpoint, prompt: Prompt | None) -> tuple[list[str], int]:
    """Offer each key (then `none`) until one is accepted: (methods the server allows next,
    keys tried). A partial success (a second factor follows) stops the offers."""
    tried = 0
    for key in identity_keys(ep, prompt):
        tried += 1
        try:
            rest = t.auth_publickey(ep.user, key)
        except paramiko.BadAuthenticationType as exc:
            return list(exc.allowed_types), tried
        except paramiko.AuthenticationException:
            continue
        return list(rest), tried  # accepted, or partially: a second factor follows
    try:
        t.auth_none(ep.user)
    except paramiko.BadAuthenticationType as exc:
        return list(exc.allowed_types), tried
    except paramiko.AuthenticationException:
        return [], tried
    return [], tried


def _interact(t: paramiko.Transport, ep: Endpoint, ask: Prompt, allowed: list[str]) -> None:
    """Password and one-time code rounds, as the server asks for them (a wrong answer ends them)."""
    try:
        for _ in range(4):  # e.g. password, then one-time code as a second round
            if "keyboard-interactive" in allowed:
                rest = t.auth_interactive(ep.user, interactive_handler(ask))
            else:
                rest = t.auth_password(ep.user, _ask_one(ask, f"Password for {ep.user}@{ep.hostname}: "))
            if t.is_authenticated():
                return
            allowed = list(rest or [])
            if not ("keyboard-interactive" in allowed or "password" in allowed):
                return
    except paramiko.AuthenticationException:
        return


def interactive_handler(ask: Prompt):
    def handler(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        if not prompts:  # some servers send an empty round (e.g. a banner): nothing to ask
            return []
        answers = list(ask(title, instructions, [(text, bool(echo)) for text, echo in prompts]) or [])
        return (answers + [""] * len(prompts))[: len(prompts)]

    return handler
