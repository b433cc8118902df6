/* What the sample region (region.c) and the demo region (demo_region.c)
 * share: the event types each kind of organisation may publish, and the
 * small file helpers that write a region. */
#ifndef SCHAKEL_TOOL_REGION_H
#define SCHAKEL_TOOL_REGION_H

#include <jansson.h>

#define SCHOOL                                                                        \
    "signal consultation consent_given consent_withdrawn referral case_lead meeting " \
    "action_item meldcode_step veiligthuis_report absence thuiszitter_status "        \
    "education_care_arrangement closure handover handover_confirmed mazl_request adapter_status"
#define CARE                                                                                                \
    "signal consultation consent_given consent_withdrawn referral referral_received "                       \
    "intake first_contact case_lead meeting action_item waiting_list bridging_care "                        \
    "meldcode_step veiligthuis_report feedback_status closure family_informed handover handover_confirmed " \
    "adapter_status"
#define PPO_PUBLISH                                                                                       \
    "consultation referral referral_received intake first_contact case_lead meeting action_item "         \
    "tlv education_care_arrangement thuiszitter_status feedback_status closure family_informed handover " \
    "handover_confirmed adapter_status"
#define VEILIGTHUIS_PUBLISH                                                                           \
    "consultation referral referral_received veiligthuis_feedback case_lead feedback_status closure " \
    "family_informed adapter_status"
#define GEMEENTE_PUBLISH                                                                          \
    "beschikking referral_received intake first_contact feedback_status closure family_informed " \
    "adapter_status"
#define LEERPLICHT_PUBLISH "absence thuiszitter_status adapter_status"

/* Writes doc to path through path.tmp and a rename. 0 or a SCHAKEL_E* code. */
int tool_write_json(const char *path, json_t *doc);
/* Makes dir and its parents (mode 0700). 0 or -1 with errno. */
int tool_mkdir_p(const char *dir);
/* A JSON list of the space-separated words of list (under 1024 bytes). */
json_t *tool_words(const char *list);

#endif
