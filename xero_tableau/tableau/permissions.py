"""May the signed-in user publish to a project? Checked before any data moves.

TSC has no effective-permission call, so the check evaluates what it can see: the site role
(:data:`PUBLISHING_SITE_ROLES`), implicit rights (administrators, the project's owner) and the
explicit ``Write``/``ProjectLeader`` rules with Tableau's precedence. A refusal is a
:class:`~xero_tableau.tableau.outcome.PublishPermissionError` naming the site, the project and
what is missing. Every call goes through the session's call wrapper (read-only, so idempotent).

This package must never import dagster.
"""

from collections.abc import Mapping

import tableauserverclient as TSC

from xero_tableau.tableau.outcome import PublishPermissionError
from xero_tableau.tableau.session import TableauSession

__all__ = ["PUBLISHING_SITE_ROLES", "PublishPermissions"]

#: Site roles that may publish at all.
PUBLISHING_SITE_ROLES = frozenset(
    {
        "Creator",
        "ExplorerCanPublish",
        "SiteAdministratorCreator",
        "SiteAdministratorExplorer",
        "ServerAdministrator",
    }
)
#: Roles that hold implicit rights on every project (not listed in explicit rules).
_ADMIN_SITE_ROLES = frozenset(
    {"SiteAdministratorCreator", "SiteAdministratorExplorer", "ServerAdministrator"}
)


def _verdict(capabilities: Mapping[str, str]) -> str | None:
    """One rule's verdict on publishing: ``Deny`` wins over ``Allow``; None if it says nothing."""
    modes = {capabilities.get("Write"), capabilities.get("ProjectLeader")}
    if "Deny" in modes:
        return "Deny"
    return "Allow" if "Allow" in modes else None


class PublishPermissions:
    """The publish check for one session, with the projects that passed it cached by name."""

    def __init__(self, session: TableauSession) -> None:
        self.session = session
        self._projects: dict[str, TSC.ProjectItem] = {}

    def check_can_publish(self, project_name: str) -> TSC.ProjectItem:
        """The project, if it exists and the signed-in user may publish there.

        Rules (TSC exposes explicit permissions only): a publishing site role is required;
        administrators and the project's owner hold implicit rights; otherwise an explicit
        ``Write`` (or ``ProjectLeader``) ``Allow`` for the user, or for one of the user's groups
        when the user has no rule of their own, with no ``Deny`` taking precedence.
        Raises :class:`PublishPermissionError` naming what is missing. Cached per project."""
        cached = self._projects.get(project_name)
        if cached is not None:
            return cached
        site, call, server = self.session.site, self.session.call, self.session.server
        project = self._find_project(project_name)
        user_id = server.user_id
        user = call(lambda: server.users.get_by_id(user_id))
        role = str(user.site_role or "")
        if role not in PUBLISHING_SITE_ROLES:
            raise PublishPermissionError(
                site,
                project_name,
                f"site role {role or 'unknown'!r} cannot publish (needs one of "
                f"{', '.join(sorted(PUBLISHING_SITE_ROLES))})",
            )
        if role in _ADMIN_SITE_ROLES or (project.owner_id and project.owner_id == user_id):
            self._projects[project_name] = project
            return project
        call(lambda: server.projects.populate_permissions(project))
        verdict = self.write_verdict(project, user)
        if verdict != "Allow":
            raise PublishPermissionError(
                site,
                project_name,
                f"user {user.name or user_id!r} lacks Write=Allow on the project "
                f"({'explicitly denied' if verdict == 'Deny' else 'no rule grants it'})",
            )
        self._projects[project_name] = project
        return project

    def _find_project(self, project_name: str) -> TSC.ProjectItem:
        """The one project of that name (a top-level one if several share it)."""
        server = self.session.server
        found = self.session.call(lambda: list(server.projects.filter(name=project_name)))
        matches = [p for p in found if p.name == project_name]
        if not matches:
            raise PublishPermissionError(
                self.session.site, project_name, "the project does not exist"
            )
        if len(matches) > 1:
            top = [p for p in matches if not p.parent_id]
            if len(top) != 1:
                raise PublishPermissionError(
                    self.session.site,
                    project_name,
                    f"{len(matches)} projects have this name; rename one or use a unique name",
                )
            matches = top
        return matches[0]

    def write_verdict(self, project: TSC.ProjectItem, user: TSC.UserItem) -> str | None:
        """Tableau's precedence: the user's own Deny, then own Allow, then group Deny, Allow.

        ``project.permissions`` must be populated; the user's groups are fetched only when a
        group rule says something."""
        rules = project.permissions
        own = [
            _verdict(r.capabilities)
            for r in rules
            if r.grantee.tag_name == "user" and r.grantee.id == user.id
        ]
        if "Deny" in own:
            return "Deny"
        if "Allow" in own:
            return "Allow"
        group_rules = [r for r in rules if r.grantee.tag_name == "group"]
        if not any(_verdict(r.capabilities) for r in group_rules):
            return None
        server = self.session.server
        self.session.call(lambda: server.users.populate_groups(user))
        mine = {g.id for g in user.groups}
        group_verdicts = [_verdict(r.capabilities) for r in group_rules if r.grantee.id in mine]
        if "Deny" in group_verdicts:
            return "Deny"
        return "Allow" if "Allow" in group_verdicts else None
