"""`manage.py vectors check|rebuild|repair|reembed|second [--org SLUG]`: keep the vector store in step
with the database.

`second` fills in the second model's embedding of faces that lack it (from their stored crops);
the cascade would otherwise compute it on first need.

The database is the source of truth. `check` exits with status 1 when anything differs, so it can
run from cron or CI.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from tqdm import tqdm

from faces import vector_maintenance
from faces.index import VectorStoreUnavailable, get_index
from faces.models import Face
from organizations.models import Organization

PREVIEW = 10  # face ids listed per difference; the counts are always complete


def _preview(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:PREVIEW])
    return shown + (f", … ({len(ids) - PREVIEW} more)" if len(ids) > PREVIEW else "")


class Command(BaseCommand):
    help = "Check, rebuild, repair or re-embed the vector store from the database (the source of truth)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{check,rebuild,repair,reembed,second}")
        check = actions.add_parser("check", help="Report differences between the database and the vector store.")
        rebuild = actions.add_parser("rebuild", help="Rewrite the vector store from the database.")
        repair = actions.add_parser("repair", help="Add missing vectors, remove orphans and stray organisations.")
        reembed = actions.add_parser(
            "reembed", help="Re-embed every face from its stored crop with the current model, then rebuild."
        )
        reembed.add_argument(
            "--drop-unembeddable",
            action="store_true",
            help="Delete faces whose crop no longer shows a face to the current model (otherwise nothing is written).",
        )
        second = actions.add_parser(
            "second", help="Compute the second model's embedding for faces without one (from their stored crops).")
        for sub in (check, rebuild, repair, reembed, second):
            sub.add_argument("--org", dest="org", metavar="SLUG", help="Only this organisation (default: all).")

    def handle(self, *args, action: str, org: str | None = None, **options) -> None:
        organizations = self._organizations(org)
        try:
            getattr(self, f"_{action}")(organizations, {**options, "org": org})
        except VectorStoreUnavailable as exc:
            raise CommandError(f"{exc.message} ({get_index().name})") from None

    def _organizations(self, slug: str | None) -> QuerySet[Organization]:
        queryset = Organization.objects.order_by("slug")
        if slug is None:
            return queryset
        queryset = queryset.filter(slug=slug)
        if not queryset.exists():
            raise CommandError(f"No organisation '{slug}'.")
        return queryset

    def _check(self, organizations: QuerySet[Organization], options: dict) -> None:
        inconsistent = 0
        for organization in organizations:
            diff = vector_maintenance.vectors_check(organization=organization)
            line = f"{diff.organization}: {diff.faces} faces, {diff.vectors} vectors"
            if diff.consistent:
                self.stdout.write(f"{line}, in step")
                continue
            inconsistent += 1
            parts = []
            if diff.missing_vectors:
                parts.append(f"{len(diff.missing_vectors)} missing vectors ({_preview(diff.missing_vectors)})")
            if diff.orphan_vectors:
                parts.append(f"{len(diff.orphan_vectors)} orphan vectors ({_preview(diff.orphan_vectors)})")
            self.stdout.write(self.style.WARNING(f"{line}, " + "; ".join(parts)))
        if options.get("org") is None:
            stray = vector_maintenance.vectors_stray_organizations()
            if stray:
                inconsistent += 1
                self.stdout.write(
                    self.style.WARNING(f"vectors of {len(stray)} deleted organisations remain (ids {_preview(stray)})")
                )
        if inconsistent:
            raise CommandError("The vector store differs from the database; run `manage.py vectors repair`.")
        self.stdout.write(self.style.SUCCESS("Vector store and database agree."))

    def _rebuild(self, organizations: QuerySet[Organization], options: dict) -> None:
        for organization in organizations:
            total = Face.objects.filter(organization=organization).count()
            with tqdm(total=total, desc=organization.slug, unit="face", file=self.stderr) as bar:
                written = vector_maintenance.vectors_rebuild(organization=organization, progress=bar.update)
            self.stdout.write(f"{organization.slug}: {written} vectors written")

    def _repair(self, organizations: QuerySet[Organization], options: dict) -> None:
        for organization in organizations:
            diff = vector_maintenance.vectors_repair(organization=organization)
            self.stdout.write(
                f"{diff.organization}: {len(diff.missing_vectors)} vectors added, "
                f"{len(diff.orphan_vectors)} orphans removed"
            )
        if options.get("org") is None:
            dropped = vector_maintenance.vectors_drop_stray()
            if dropped:
                self.stdout.write(f"dropped the vectors of {len(dropped)} deleted organisations ({_preview(dropped)})")

    def _reembed(self, organizations: QuerySet[Organization], options: dict) -> None:
        failed = False
        for organization in organizations:
            total = Face.objects.filter(organization=organization).count()
            with tqdm(total=total, desc=organization.slug, unit="face", file=self.stderr) as bar:
                result = vector_maintenance.vectors_reembed(
                    organization=organization,
                    drop_unembeddable=options["drop_unembeddable"],
                    progress=bar.update,
                )
            if result.written:
                dropped = f", {len(result.unembeddable)} unembeddable faces deleted" if result.unembeddable else ""
                self.stdout.write(f"{result.organization}: {result.reembedded} faces re-embedded with "
                                  f"{result.model_name}{dropped}")
            else:
                failed = True
                self.stdout.write(self.style.WARNING(
                    f"{result.organization}: nothing written; {len(result.unembeddable)} crops show no face to "
                    f"{result.model_name} ({_preview(result.unembeddable)}). Re-register those people, or "
                    "pass --drop-unembeddable."
                ))
        if failed:
            raise CommandError("Some organisations were not re-embedded.")

    def _second(self, organizations: QuerySet[Organization], options: dict) -> None:
        for organization in organizations:
            written = vector_maintenance.second_vectors_fill(organization=organization)
            self.stdout.write(f"{organization.slug}: {written} second-model embeddings written")
