import base64

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from faces.models import Face, Person
from faces.services import face_delete, person_delete


class FaceInline(admin.TabularInline):
    model = Face
    fields = ["thumbnail", "box", "detection_confidence", "model_name", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Face")
    def thumbnail(self, obj):
        return face_thumbnail(obj)


def face_thumbnail(face: Face) -> str:
    crop = bytes(face.crop or b"")
    if not crop:
        return "-"
    return format_html('<img src="data:image/jpeg;base64,{}" height="64" alt="face">', base64.b64encode(crop).decode())


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "face_count", "faces_preview", "created_at", "updated_at"]
    list_filter = ["organization", "created_at", "updated_at"]
    search_fields = ["name", "organization__slug"]
    list_select_related = ["organization"]
    inlines = [FaceInline]
    readonly_fields = ["organization", "created_at", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_faces=Count("faces"))

    @admin.display(description="Face count", ordering="_faces")
    def face_count(self, obj):
        return obj._faces

    @admin.display(description="Faces")
    def faces_preview(self, obj):
        return format_html_join("", "{}", ((face_thumbnail(face),) for face in obj.faces.all()[:4]))

    def has_add_permission(self, request):
        return False  # people are registered from photos through the API or the webcam page

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
