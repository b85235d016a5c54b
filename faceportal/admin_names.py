"""Admin forms for display names: the API's rules (`faceportal.text`), and a warning for look-alikes."""

from __future__ import annotations

from django import forms
from django.contrib import messages

from faceportal.text import NameRefused, display_name_clean, lookalikes


class DisplayNameForm(forms.ModelForm):
    def clean_name(self) -> str:
        try:
            return display_name_clean(self.cleaned_data["name"])
        except NameRefused as refused:
            raise forms.ValidationError(str(refused)) from None


def warn_about_lookalikes(request, *, name: str, others: list[str], what: str) -> None:
    """A message on the admin page when `name` looks like another one: homoglyphs are not refused
    (they are real letters of real scripts), but staff should see a possible spoof."""
    similar = lookalikes(name, others)
    if similar:
        messages.warning(
            request,
            f"'{name}' looks like {what} {', '.join(repr(other) for other in similar[:5])}: "
            "check that it is not meant to be mistaken for it.",
        )
