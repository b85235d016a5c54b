import base64
import io

from django.contrib import admin
from django.db.models import Count, Prefetch
from django.utils.html import format_html, format_html_join
from PIL import Image, UnidentifiedImageError

from faceportal.admin_names import DisplayNameForm, warn_about_lookalikes
from faces.engine.pipeline import CROP_CONTEXT
from faces.models import EnrolmentJob, EnrolmentJobImage, Face, Person
from faces.services import face_delete, person_delete

PREVIEW_FACES = 5  # thumbnails per row in the people list


class FaceInline(admin.TabularInline):
    model = Face
    fields = ["thumbnail_with_box", "quality", "model_name", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "face"
    verbose_name_plural = "faces"

    # Faces come from photos (API, webcam page, "try it"): an empty "add" row could save nothing.
    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Face (detected box drawn)")
    def thumbnail_with_box(self, obj):
        return face_thumbnail(obj, size=96, with_box=True)

    @admin.display(description="Quality (detection confidence)")
    def quality(self, obj):
        return f"{obj.detection_confidence:.2f}"


def box_in_crop(face: Face, crop_width: int, crop_height: int) -> tuple[float, float, float, float] | None:
    """The detected box as percentages of the stored crop (which keeps CROP_CONTEXT around it)."""
    box = face.box or {}
    try:
        x, y, w, h = (int(box[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        return None
    if w <= 0 or h <= 0 or crop_width <= 0 or crop_height <= 0:
        return None
    pad_x, pad_y = int(w * CROP_CONTEXT), int(h * CROP_CONTEXT)
    x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
    # The right and bottom edges may have been cut by the photo's border; the larger scale is right.
    scale = max(crop_width / (x + w + pad_x - x0), crop_height / (y + h + pad_y - y0))
    return (100 * (x - x0) * scale / crop_width, 100 * (y - y0) * scale / crop_height,
            100 * w * scale / crop_width, 100 * h * scale / crop_height)


def face_thumbnail(face: Face, *, size: int = 64, with_box: bool = False) -> str:
    crop = bytes(face.crop or b"")
    if not crop:
        return "-"
    source = "data:image/jpeg;base64," + base64.b64encode(crop).decode()
    if not with_box:
        return format_html('<img src="{}" height="{}" alt="face" class="fp-thumb" loading="lazy">', source, size)
    try:
        crop_width, crop_height = Image.open(io.BytesIO(crop)).size
    except (UnidentifiedImageError, OSError):
        return "-"
    box = box_in_crop(face, crop_width, crop_height)
    outline = "" if box is None else format_html(
        '<span class="fp-face-box" style="left:{}%;top:{}%;width:{}%;height:{}%"></span>',
        *(f"{value:.1f}" for value in box),
    )
    return format_html(
        '<span class="fp-face" style="position:relative;display:inline-block;line-height:0">'
        '<img src="{}" height="{}" alt="face {}" loading="lazy">{}</span>',
        source, size, face.pk, outline,
    )


def _people_not_persons(get_app_list):
    """The admin names models by verbose_name_plural; "Persons" reads wrong and renaming it in the
    model would need a migration in faces/, so the staff console relabels it."""

    def wrapped(request, app_label=None):
        app_list = get_app_list(request, app_label) if app_label else get_app_list(request)
        for app in app_list:
            if app.get("app_label") == "apikeys":
                app["name"] = "API keys"
            for model in app["models"]:
                if model.get("object_name") == "Person":
                    model["name"] = "People"
        return app_list

    return wrapped


admin.site.get_app_list = _people_not_persons(admin.site.get_app_list)


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    form = DisplayNameForm
    list_display = ["name", "faces_preview", "face_count", "organization", "created_at", "updated_at"]
    list_filter = ["organization", "created_at", "updated_at"]
    search_fields = ["name", "organization__slug"]
    list_select_related = ["organization"]
    inlines = [FaceInline]
    readonly_fields = ["organization", "created_at", "updated_at"]

    def get_queryset(self, request):
        # One query for the thumbnails of a whole page, and at most PREVIEW_FACES crops per person.
        preview = Face.objects.only("id", "person_id", "crop", "box").order_by("id")[:PREVIEW_FACES]
        return super().get_queryset(request).annotate(_faces=Count("faces")).prefetch_related(
            Prefetch("faces", queryset=preview, to_attr="preview_faces")
        )

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "People", **(extra_context or {})})

    @admin.display(description="Faces", ordering="_faces")
    def face_count(self, obj):
        return obj._faces

    @admin.display(description="Photos")
    def faces_preview(self, obj):
        faces = getattr(obj, "preview_faces", None)
        if faces is None:
            faces = list(obj.faces.all()[:PREVIEW_FACES])
        thumbs = format_html_join("", "{}", ((face_thumbnail(face, size=40),) for face in faces))
        extra = getattr(obj, "_faces", len(faces)) - len(faces)
        more = format_html('<span class="fp-more">+{}</span>', extra) if extra > 0 else ""
        return format_html('<span class="fp-thumbs" data-faces="{}">{}{}</span>',
                           getattr(obj, "_faces", len(faces)), thumbs, more)

    def has_add_permission(self, request):
        return False  # people are registered from photos through the API or the webcam page

    def _warn_about_lookalikes(self, request, person: Person) -> None:
        others = list(Person.objects.filter(organization_id=person.organization_id).exclude(pk=person.pk)
                      .values_list("name", flat=True))
        warn_about_lookalikes(request, name=person.name, others=others, what="another person in this organisation,")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._warn_about_lookalikes(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Shown on opening the page too: the API may have registered a look-alike.
        if request.method == "GET" and (person := Person.objects.filter(pk=object_id).first()) is not None:
            self._warn_about_lookalikes(request, person)
        return super().change_view(request, object_id, form_url, extra_context)

    # Deleting goes through the service, so the vector store forgets the faces too.
    def delete_model(self, request, obj):
        person_delete(person=obj)

    def delete_queryset(self, request, queryset):
        for person in queryset:
            person_delete(person=person)


@admin.register(Face)
class FaceAdmin(admin.ModelAdmin):
    list_display = ["id", "thumbnail", "person", "organization", "model_name", "detection_confidence", "created_at"]
    list_filter = ["organization", "model_name", "created_at"]
    search_fields = ["person__name", "organization__slug"]
    list_select_related = ["person", "organization"]
    fields = ["thumbnail", "person", "organization", "box", "detection_confidence", "model_name", "created_at"]
    readonly_fields = fields

    @admin.display(description="Face")
    def thumbnail(self, obj):
        return face_thumbnail(obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        face_delete(face=obj)

    def delete_queryset(self, request, queryset):
        for face in queryset:
            face_delete(face=face)


def progress_bar(job: EnrolmentJob) -> str:
    return format_html(
        '<progress value="{}" max="{}" title="{} of {}">{}%</progress> {} / {}',
        job.done, job.total or 1, job.done, job.total, job.percent, job.done, job.total)


class EnrolmentJobImageInline(admin.TabularInline):
    model = EnrolmentJobImage
    fields = ["position", "path", "processed", "accepted", "code", "reason", "face_id", "person_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("data")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EnrolmentJob)
class EnrolmentJobAdmin(admin.ModelAdmin):
    """Read-only: jobs are started through the API and run by the server."""

    list_display = ["id", "organization", "status", "progress", "faces_added", "created_at", "finished_at"]
    list_filter = ["status"]
    fields = ["organization", "status", "progress", "faces_added", "created_at", "started_at", "finished_at"]
    readonly_fields = fields
    inlines = [EnrolmentJobImageInline]

    @admin.display(description="Progress")
    def progress(self, obj):
        return progress_bar(obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
